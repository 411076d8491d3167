// Package txgateclient sends one atomic Kafka transaction through a txgate gateway
// (POST /v1/transactions) and retries it safely: the same Idempotency-Key and the same body
// bytes on every attempt, exponential backoff with full jitter, Retry-After honoured, until a
// definitive answer or a deadline. Standard library only; builds with Go 1.19.
package txgateclient

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Record is one Kafka record of a transaction. A nil Value is omitted from the request, which
// writes a null value (a tombstone on compacted topics).
type Record struct {
	Topic     string            `json:"topic"`
	Partition *int              `json:"partition,omitempty"`
	Key       string            `json:"key,omitempty"`
	Value     interface{}       `json:"value,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
}

// Position is where the gateway says a record was committed. Offsets are decimal strings
// because Kafka offsets are 64-bit.
type Position struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    string `json:"offset"`
}

// Committed is the outcome of a transaction that the gateway answered 200 for.
type Committed struct {
	IdempotencyKey string
	// Records are in request order.
	Records  []Position
	Attempts int
	// Replayed: the gateway answered from an earlier attempt's outcome (Idempotent-Replayed: true),
	// e.g. because the first attempt committed but its answer was lost.
	Replayed bool
}

// Problem is a definitive refusal (a 4xx other than 408, 409 and 429): the gateway promises
// nothing of the request was written, and sending it again would be refused again.
type Problem struct {
	Status int
	Code   string
	Detail string
	// Body is the problem+json document as received.
	Body []byte
}

func (p *Problem) Error() string {
	return fmt.Sprintf("%d %s: %s", p.Status, p.Code, p.Detail)
}

// GaveUpError means no definitive answer came before the deadline. The transaction may or may
// not have been written: retrying later with the same key and body (within the gateway's
// retention window, 24 h by default) learns its outcome without writing it twice.
type GaveUpError struct {
	IdempotencyKey string
	Attempts       int
	Last           string
}

func (e *GaveUpError) Error() string {
	return fmt.Sprintf("gave up after %d attempts (last: %s); the outcome is unknown: retry later with Idempotency-Key %s and the same body to learn it",
		e.Attempts, e.Last, e.IdempotencyKey)
}

// Retry describes one retry about to happen, for logging.
type Retry struct {
	IdempotencyKey string
	// Attempt is the number of the attempt that failed (1-based).
	Attempt int
	// Answer is the HTTP status and problem code, or the connection error.
	Answer     string
	RetryAfter time.Duration
	Delay      time.Duration
}

// Client sends transactions to one gateway. The zero values of the tuning fields pick the
// defaults; a Client is safe for concurrent use.
type Client struct {
	// BaseURL is the gateway, e.g. http://127.0.0.1:8080.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <APIKey>" when the gateway has API keys on.
	APIKey string
	// HTTPClient defaults to http.DefaultClient. net/http retries a request on a kept-alive
	// connection the server had closed by itself only when the request is replayable, which a
	// POST with an Idempotency-Key header is: that is safe here for the same reason.
	HTTPClient *http.Client
	// AttemptTimeout bounds one attempt (default 60 s). The gateway may take up to its retry
	// deadline (30 s) plus its acquire timeout (10 s) before answering 504; an attempt cut short
	// is simply retried with the same key.
	AttemptTimeout time.Duration
	// GiveUpAfter bounds one transaction, all attempts and pauses included (default 2 min).
	GiveUpAfter time.Duration
	// InitialBackoff (default 100 ms) doubles per retry up to MaxBackoff (default 3 s).
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// OnRetry, when set, is called before each pause.
	OnRetry func(Retry)
}

// answer is what one attempt got: an HTTP answer, or a transport error.
type answer struct {
	status     int
	code       string
	detail     string
	body       []byte
	retryAfter time.Duration
	replayed   bool
	err        error
}

func (a *answer) String() string {
	if a.err != nil {
		return "connection error: " + a.err.Error()
	}
	if a.code != "" {
		return fmt.Sprintf("%d %s", a.status, a.code)
	}
	return strconv.Itoa(a.status)
}

// Send commits records as one transaction. It returns *Committed on 200, a *Problem on a
// definitive refusal, a *GaveUpError at the deadline, or ctx's error.
func (c *Client) Send(ctx context.Context, records []Record) (*Committed, error) {
	// One key and one body per logical transaction, reused byte for byte on every retry: the
	// gateway ties a key to its first body (a different body under the same key is a 422).
	key := NewIdempotencyKey()
	body, err := json.Marshal(struct {
		Records []Record `json:"records"`
	}{records})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(orDefault(c.GiveUpAfter, 2*time.Minute))
	for attempt := 1; ; attempt++ {
		timeout := orDefault(c.AttemptTimeout, 60*time.Second)
		if left := time.Until(deadline); left < timeout {
			timeout = left
		}
		a := c.attempt(ctx, key, body, timeout)
		if a.err == nil && a.status == http.StatusOK {
			var ok struct {
				Records []Position `json:"records"`
			}
			if jerr := json.Unmarshal(a.body, &ok); jerr == nil && len(ok.Records) == len(records) {
				return &Committed{IdempotencyKey: key, Records: ok.Records, Attempts: attempt, Replayed: a.replayed}, nil
			}
			// A 200 whose body did not arrive whole (the connection dropped mid-body): the
			// transaction committed, and a retry with the same key replays its answer.
			a.err = errors.New("unreadable 200 body")
		}
		if a.err == nil && !retryable(a.status) {
			return nil, &Problem{Status: a.status, Code: a.code, Detail: a.detail, Body: a.body}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		delay := a.retryAfter + fullJitter(attempt, orDefault(c.InitialBackoff, 100*time.Millisecond), orDefault(c.MaxBackoff, 3*time.Second))
		if time.Now().Add(delay).After(deadline) {
			return nil, &GaveUpError{IdempotencyKey: key, Attempts: attempt, Last: a.String()}
		}
		if c.OnRetry != nil {
			c.OnRetry(Retry{IdempotencyKey: key, Attempt: attempt, Answer: a.String(), RetryAfter: a.retryAfter, Delay: delay})
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// retryable: 408 (the request did not arrive in time), 409 (this key's first attempt is still
// running), 429 (a proxy's rate limit) and every 5xx either wrote nothing or left the outcome
// open (504, 500 TXGATE_INTERNAL); with the same key a retry is safe in both cases. Any other
// status is definitive: nothing was written, and the same request would be refused again.
func retryable(status int) bool {
	return status == 408 || status == 409 || status == 429 || status >= 500
}

func (c *Client) attempt(ctx context.Context, key string, body []byte, timeout time.Duration) *answer {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+"/v1/transactions", bytes.NewReader(body))
	if err != nil {
		return &answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return &answer{err: err}
	}
	defer res.Body.Close()
	// Read the whole body: an unread body keeps the connection from being reused.
	data, err := io.ReadAll(res.Body)
	a := &answer{status: res.StatusCode, body: data, retryAfter: parseRetryAfter(res.Header.Get("Retry-After")), replayed: res.Header.Get("Idempotent-Replayed") == "true"}
	if err != nil && res.StatusCode != http.StatusOK {
		// the status is known; only the problem's text is lost
		err = nil
	}
	if err != nil {
		a.err = err
		return a
	}
	if res.StatusCode != http.StatusOK {
		var p struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(data, &p) == nil {
			a.code, a.detail = p.Code, p.Detail
		}
	}
	return a
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110, 10.2.3); 0 when absent or invalid.
func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// Go 1.19's global math/rand starts from the same seed in every process, which would make
// every client pick the same "random" pauses: seed a source of our own from crypto/rand.
var (
	rngMu sync.Mutex
	rng   = rand.New(rand.NewSource(cryptoSeed()))
)

func cryptoSeed() int64 {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		return time.Now().UnixNano()
	}
	return int64(binary.LittleEndian.Uint64(b[:]))
}

// fullJitter is a uniformly random pause in [0, min(max, initial * 2^(attempt-1))]: clients
// that failed together spread out instead of retrying in lockstep.
func fullJitter(attempt int, initial, max time.Duration) time.Duration {
	ceiling := max
	if attempt < 31 {
		if d := initial << uint(attempt-1); d > 0 && d < max {
			ceiling = d
		}
	}
	rngMu.Lock()
	defer rngMu.Unlock()
	return time.Duration(rng.Int63n(int64(ceiling) + 1))
}

// NewIdempotencyKey returns a random (version 4) UUID.
func NewIdempotencyKey() string {
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic(err) // the system's random source is broken: no key can be trusted to be unique
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
