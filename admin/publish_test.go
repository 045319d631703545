package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/wsgate/wsgate/handler"
)

func TestPublishAuth(t *testing.T) {
	tests := []struct {
		name       string
		apiKey     string // the server's
		auth       string // the request's Authorization header
		wantStatus int
		wantCode   string
	}{
		{name: "no key configured", apiKey: "", auth: "Bearer " + testKey, wantStatus: http.StatusForbidden, wantCode: codePublishingDisabled},
		{name: "missing key", apiKey: testKey, auth: "", wantStatus: http.StatusUnauthorized, wantCode: codeUnauthorized},
		{name: "bad key", apiKey: testKey, auth: "Bearer " + testKey + "x", wantStatus: http.StatusUnauthorized, wantCode: codeUnauthorized},
		{name: "prefix of the key", apiKey: testKey, auth: "Bearer " + testKey[:10], wantStatus: http.StatusUnauthorized, wantCode: codeUnauthorized},
		{name: "empty bearer", apiKey: testKey, auth: "Bearer ", wantStatus: http.StatusUnauthorized, wantCode: codeUnauthorized},
		{name: "basic scheme", apiKey: testKey, auth: "Basic " + testKey, wantStatus: http.StatusUnauthorized, wantCode: codeUnauthorized},
		{name: "good key", apiKey: testKey, auth: "Bearer " + testKey, wantStatus: http.StatusOK},
		{name: "scheme in lower case", apiKey: testKey, auth: "bearer " + testKey, wantStatus: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{APIKey: tt.apiKey}, false)
			req := newPublishRequest("", `{"channel":"news","data":1}`)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := e.serve(req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("got status %d (%s), want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusOK {
				if got := rec.Body.String(); got != "{\"delivered\":0}\n" {
					t.Errorf("got body %q, want {\"delivered\":0}", got)
				}
				return
			}
			checkError(t, rec, tt.wantCode)
			if tt.wantStatus == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a
// logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records decodes the JSON log records written so far.
func (b *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var recs []map[string]any
	for line := range strings.Lines(b.buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// TestPublishUnauthorizedLogLimited sends many bad keys at once: every one
// is answered 401 and counted, and one warning is logged; the next warning,
// once the interval has passed, says how many were left out.
func TestPublishUnauthorizedLogLimited(t *testing.T) {
	const senders, each = 8, 25
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, Config{APIKey: testKey, Logger: logger, WarnInterval: time.Hour}, false)
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for i := range each {
				key := "" // missing and wrong keys alike
				if i%2 == 1 {
					key = "wrong-key-0123456789"
				}
				if rec := e.serve(newPublishRequest(key, `{"channel":"news","data":1}`)); rec.Code != http.StatusUnauthorized {
					t.Errorf("got status %d, want 401", rec.Code)
				}
			}
		})
	}
	wg.Wait()

	const total = senders * each
	recs := logs.records(t)
	if len(recs) != 1 {
		t.Fatalf("got %d log records, want 1; the first: %v", len(recs), recs[:min(len(recs), 1)])
	}
	if recs[0]["level"] != "WARN" || recs[0]["remote"] == nil || recs[0]["suppressed"] != nil {
		t.Errorf("got record %v, want a warning with remote and without suppressed", recs[0])
	}
	if got := e.adm.Stats().Unauthorized; got != total {
		t.Errorf("got Stats().Unauthorized %d, want %d", got, total)
	}
	rec := e.serve(httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if want := fmt.Sprintf("wsgate_api_unauthorized_total %d\n", total); !strings.Contains(rec.Body.String(), want) {
		t.Errorf("/metrics has no %q", want)
	}

	// The interval has passed: a fresh limiter has its token back.
	e.adm.keyWarn = rate.NewLimiter(rate.Every(time.Hour), 1)
	e.serve(newPublishRequest("", `{"channel":"news","data":1}`))
	recs = logs.records(t)
	if len(recs) != 2 {
		t.Fatalf("got %d log records, want 2; the first two: %v", len(recs), recs[:min(len(recs), 2)])
	}
	if got, want := recs[1]["suppressed"], float64(total-1); got != want {
		t.Errorf("got suppressed %v, want %v", got, want)
	}
	if got := e.adm.Stats().Unauthorized; got != total+1 {
		t.Errorf("got Stats().Unauthorized %d, want %d", got, total+1)
	}
}

func TestPublishErrors(t *testing.T) {
	big := `{"channel":"news","data":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	batch := func(n int) string {
		msgs := make([]string, n)
		for i := range msgs {
			msgs[i] = `{"channel":"news","data":1}`
		}
		return `{"messages":[` + strings.Join(msgs, ",") + `]}`
	}
	tests := []struct {
		name        string
		method      string // default POST
		contentType string // default application/json; "-" for none
		body        string
		chunked     bool // no Content-Length
		wantStatus  int
		wantCode    string
	}{
		{name: "GET", method: http.MethodGet, wantStatus: http.StatusMethodNotAllowed, wantCode: codeMethodNotAllowed},
		{name: "PUT", method: http.MethodPut, body: `{"channel":"news","data":1}`, wantStatus: http.StatusMethodNotAllowed, wantCode: codeMethodNotAllowed},
		{name: "text/plain", contentType: "text/plain", body: `{"channel":"news","data":1}`, wantStatus: http.StatusUnsupportedMediaType, wantCode: codeUnsupportedMediaType},
		{name: "no content type", contentType: "-", body: `{"channel":"news","data":1}`, wantStatus: http.StatusUnsupportedMediaType, wantCode: codeUnsupportedMediaType},
		{name: "form", contentType: "application/x-www-form-urlencoded", body: "channel=news", wantStatus: http.StatusUnsupportedMediaType, wantCode: codeUnsupportedMediaType},
		{name: "json with charset", contentType: "application/json; charset=utf-8", body: `{"channel":"news","data":1}`, wantStatus: http.StatusOK},
		{name: "not JSON", body: `{"channel":`, wantStatus: http.StatusBadRequest, wantCode: codeBadJSON},
		{name: "empty body", body: ``, wantStatus: http.StatusBadRequest, wantCode: codeBadJSON},
		{name: "array", body: `[{"channel":"news","data":1}]`, wantStatus: http.StatusBadRequest, wantCode: codeBadJSON},
		{name: "channel not a string", body: `{"channel":5,"data":1}`, wantStatus: http.StatusBadRequest, wantCode: codeBadJSON},
		{name: "unknown field", body: `{"chanel":"news","data":1}`, wantStatus: http.StatusBadRequest, wantCode: codeBadJSON},
		{name: "trailing data", body: `{"channel":"news","data":1} {}`, wantStatus: http.StatusBadRequest, wantCode: codeBadJSON},
		{name: "bad channel", body: `{"channel":"a b","data":1}`, wantStatus: http.StatusBadRequest, wantCode: codeBadChannel},
		{name: "channel too long", body: `{"channel":"` + strings.Repeat("a", 129) + `","data":1}`, wantStatus: http.StatusBadRequest, wantCode: codeBadChannel},
		{name: "no channel", body: `{"data":1}`, wantStatus: http.StatusBadRequest, wantCode: codeBadChannel},
		{name: "no data", body: `{"channel":"news"}`, wantStatus: http.StatusBadRequest, wantCode: codeBadData},
		{name: "null data", body: `{"channel":"news","data":null}`, wantStatus: http.StatusOK},
		{name: "batch and channel", body: `{"channel":"news","messages":[{"channel":"news","data":1}]}`, wantStatus: http.StatusBadRequest, wantCode: codeBadBatch},
		{name: "empty batch", body: `{"messages":[]}`, wantStatus: http.StatusBadRequest, wantCode: codeBadBatch},
		{name: "batch of MaxBatch", body: batch(MaxBatch), wantStatus: http.StatusOK},
		{name: "batch over MaxBatch", body: batch(MaxBatch + 1), wantStatus: http.StatusBadRequest, wantCode: codeBadBatch},
		{name: "body too large", body: big, wantStatus: http.StatusRequestEntityTooLarge, wantCode: codeBodyTooLarge},
		{name: "body too large, chunked", body: big, chunked: true, wantStatus: http.StatusRequestEntityTooLarge, wantCode: codeBodyTooLarge},
	}
	e := newEnv(t, Config{APIKey: testKey}, false)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newPublishRequest(testKey, tt.body)
			if tt.method != "" {
				req.Method = tt.method
			}
			switch tt.contentType {
			case "":
			case "-":
				req.Header.Del("Content-Type")
			default:
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.chunked {
				req.ContentLength = -1
			}
			rec := e.serve(req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("got status %d (%.200s), want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			if tt.wantCode != "" {
				checkError(t, rec, tt.wantCode)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != http.MethodPost {
				t.Errorf("got Allow %q, want POST", rec.Header().Get("Allow"))
			}
		})
	}
}

// TestPublishReachesSubscriber publishes through a real admin listener to
// a client subscribed through a real WebSocket connection, one message and
// then a batch with good and bad messages.
func TestPublishReachesSubscriber(t *testing.T) {
	e := newEnv(t, Config{APIKey: testKey}, true)
	e.startWS(t)
	base := e.startAdmin(t)
	client := httpClient(t)
	ws := subscriber(t, e, "news")

	post := func(body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+"/api/publish", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testKey)
		return do(t, client, req)
	}

	t.Run("one message", func(t *testing.T) {
		status, body := post(`{"channel":"news","data":{"hello":"world"}}`)
		if status != http.StatusOK || body != "{\"delivered\":1}\n" {
			t.Fatalf("got %d %q, want 200 {\"delivered\":1}", status, body)
		}
		if got, want := read(t, ws), `{"channel":"news","data":{"hello":"world"}}`; got != want {
			t.Errorf("subscriber got %s, want %s", got, want)
		}
	})

	t.Run("batch with mixed results", func(t *testing.T) {
		status, body := post(`{"messages":[
			{"channel":"news","data":1},
			{"channel":"bad channel","data":2},
			{"channel":"news"},
			{"channel":"elsewhere","data":3},
			{"channel":"news","data":"last"}]}`)
		want := `{"results":[{"delivered":1},{"error":"bad_channel"},{"error":"bad_data"},{"delivered":0},{"delivered":1}]}` + "\n"
		if status != http.StatusOK || body != want {
			t.Fatalf("got %d %s, want 200 %s", status, body, want)
		}
		for _, want := range []string{`{"channel":"news","data":1}`, `{"channel":"news","data":"last"}`} {
			if got := read(t, ws); got != want {
				t.Errorf("subscriber got %s, want %s", got, want)
			}
		}
	})

	// Channels.Publish hands every accepted message to the broker, for the
	// other processes.
	want := []string{"news", "news", "elsewhere", "news"}
	if got := e.broker.channels(); !slices.Equal(got, want) {
		t.Errorf("broker got publishes to %v, want %v", got, want)
	}
	if got := e.ch.Stats().Published; got != 4 {
		t.Errorf("hub counted %d publishes, want 4", got)
	}
}

// checkError checks that rec holds a JSON error body with code.
func checkError(t *testing.T, rec *httptest.ResponseRecorder, code string) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", ct)
	}
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q is not JSON: %v", rec.Body, err)
	}
	if body.Error != code || body.Message == "" {
		t.Errorf("got error %q message %q, want code %q and a message", body.Error, body.Message, code)
	}
}

// TestPublishAnswersPosition publishes to a hub that keeps history: each
// answer, single or batched, carries the publication's offset and epoch.
func TestPublishAnswersPosition(t *testing.T) {
	e := newEnvWith(t, handler.ChannelsConfig{}, Config{APIKey: testKey}, false) // default rules: history on
	type answer struct {
		Delivered *int   `json:"delivered"`
		Offset    uint64 `json:"offset"`
		Epoch     string `json:"epoch"`
		Results   []struct {
			Offset uint64 `json:"offset"`
			Epoch  string `json:"epoch"`
			Error  string `json:"error"`
		} `json:"results"`
	}
	post := func(body string) answer {
		t.Helper()
		rec := e.serve(newPublishRequest(testKey, body))
		var a answer
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &a) != nil {
			t.Fatalf("got %d %s, want 200 and JSON", rec.Code, rec.Body)
		}
		return a
	}
	first := post(`{"channel":"news","data":1}`)
	if first.Delivered == nil || first.Offset != 1 || first.Epoch == "" {
		t.Fatalf("got %+v, want delivered, offset 1 and an epoch", first)
	}
	batch := post(`{"messages":[{"channel":"news","data":2},{"channel":"bad channel","data":3},{"channel":"news","data":4}]}`)
	if len(batch.Results) != 3 || batch.Results[0].Offset != 2 || batch.Results[0].Epoch != first.Epoch ||
		batch.Results[1].Error != "bad_channel" || batch.Results[1].Offset != 0 || batch.Results[2].Offset != 3 {
		t.Fatalf("got %+v, want offsets 2 and 3 in epoch %s around a bad_channel", batch.Results, first.Epoch)
	}
}
