// Command send commits COUNT transactions through a txgate gateway, one after the other, each
// of two records on TOPIC, and prints one JSON line per committed transaction.
//
//	go run . http://127.0.0.1:8080 demo 10
//
// Environment: TXGATE_API_KEY (a bearer token, when the gateway has API keys on),
// TXGATE_GIVE_UP_MS (per transaction, default 120000).
// Exit status: 0 all committed, 1 a definitive refusal (4xx), 2 gave up (outcome unknown), 64 usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"txgate.example/send/txgateclient"
)

type line struct {
	N              int                     `json:"n"`
	IdempotencyKey string                  `json:"idempotencyKey"`
	Attempts       int                     `json:"attempts"`
	Replayed       bool                    `json:"replayed"`
	Records        []txgateclient.Position `json:"records"`
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: send GATEWAY_URL TOPIC COUNT")
		os.Exit(64)
	}
	url, topic := os.Args[1], os.Args[2]
	count, err := strconv.Atoi(os.Args[3])
	if err != nil || count < 0 {
		fmt.Fprintln(os.Stderr, "send: COUNT must be a whole number")
		os.Exit(64)
	}
	giveUp := 120 * time.Second
	if v := os.Getenv("TXGATE_GIVE_UP_MS"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			fmt.Fprintln(os.Stderr, "send: TXGATE_GIVE_UP_MS must be a positive number of milliseconds")
			os.Exit(64)
		}
		giveUp = time.Duration(ms) * time.Millisecond
	}

	// One client for every transaction: its connections are kept alive between requests.
	n := 0
	client := &txgateclient.Client{
		BaseURL:     url,
		APIKey:      os.Getenv("TXGATE_API_KEY"),
		GiveUpAfter: giveUp,
		OnRetry: func(r txgateclient.Retry) {
			fmt.Fprintf(os.Stderr, "send: transaction %d attempt %d: %s; retrying in %d ms (Retry-After %d ms)\n",
				n, r.Attempt, r.Answer, r.Delay.Milliseconds(), r.RetryAfter.Milliseconds())
		},
	}
	for ; n < count; n++ {
		// Both records commit together or not at all.
		records := []txgateclient.Record{
			{Topic: topic, Key: fmt.Sprintf("tx-%d", n), Value: map[string]interface{}{"n": n, "part": 0, "client": "go"}},
			{Topic: topic, Key: fmt.Sprintf("tx-%d", n), Value: map[string]interface{}{"n": n, "part": 1, "client": "go"}},
		}
		c, err := client.Send(context.Background(), records)
		var problem *txgateclient.Problem
		var gaveUp *txgateclient.GaveUpError
		switch {
		case err == nil:
			out, _ := json.Marshal(line{N: n, IdempotencyKey: c.IdempotencyKey, Attempts: c.Attempts, Replayed: c.Replayed, Records: c.Records})
			fmt.Println(string(out))
		case errors.As(err, &problem):
			fmt.Fprintf(os.Stderr, "send: transaction %d refused, nothing of it was written: %v\n%s\n", n, problem, problem.Body)
			os.Exit(1)
		case errors.As(err, &gaveUp):
			fmt.Fprintf(os.Stderr, "send: transaction %d: %v\n", n, gaveUp)
			os.Exit(2)
		default:
			fmt.Fprintf(os.Stderr, "send: transaction %d: %v\n", n, err)
			os.Exit(2)
		}
	}
}
