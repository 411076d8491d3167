module txgate.example/send

go 1.19
