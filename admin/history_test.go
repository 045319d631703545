package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/handler"
)

// historyRules keep the last 3 publications of every channel but those
// under "off.", which keep none.
var historyRules = handler.ChannelsConfig{Rules: []handler.ChannelRule{
	{ChannelOptions: handler.ChannelOptions{HistorySize: 3}},
	{Prefix: "off.", ChannelOptions: handler.ChannelOptions{HistorySize: 0}},
}}

// newHistoryRequest is a GET of /api/history?query with, if key is not
// empty, the bearer key.
func newHistoryRequest(key, query string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/api/history?"+query, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return req
}

// publishN publishes the data 1 to n to channel through the hub and
// returns the epoch of the last publication.
func publishN(t *testing.T, ch *handler.Channels, channel string, n int) string {
	t.Helper()
	var p handler.Published
	for i := 1; i <= n; i++ {
		var err error
		if p, err = ch.PublishWithPosition(channel, json.RawMessage(fmt.Sprint(i))); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if p.Position.Epoch == "" {
		t.Fatalf("publish to %s: no epoch: history is off", channel)
	}
	return p.Position.Epoch
}

func TestHistoryAuth(t *testing.T) {
	tests := []struct {
		name       string
		apiKey     string // the server's
		auth       string // the request's Authorization header
		wantStatus int
		wantCode   string
	}{
		{name: "no key configured", apiKey: "", auth: "Bearer " + testKey, wantStatus: http.StatusForbidden, wantCode: codePublishingDisabled},
		{name: "missing key", apiKey: testKey, wantStatus: http.StatusUnauthorized, wantCode: codeUnauthorized},
		{name: "wrong key", apiKey: testKey, auth: "Bearer " + testKey + "x", wantStatus: http.StatusUnauthorized, wantCode: codeUnauthorized},
		{name: "basic scheme", apiKey: testKey, auth: "Basic " + testKey, wantStatus: http.StatusUnauthorized, wantCode: codeUnauthorized},
		{name: "good key", apiKey: testKey, auth: "Bearer " + testKey, wantStatus: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnvWith(t, historyRules, Config{APIKey: tt.apiKey}, false)
			req := newHistoryRequest("", "channel=news")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := e.serve(req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("got status %d (%s), want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			wantRefused := uint64(0)
			if tt.wantStatus == http.StatusUnauthorized {
				wantRefused = 1
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
			if got := e.adm.Stats().Unauthorized; got != wantRefused {
				t.Errorf("got Stats().Unauthorized %d, want %d", got, wantRefused)
			}
			if tt.wantCode != "" {
				checkError(t, rec, tt.wantCode)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	e := newEnvWith(t, historyRules, Config{APIKey: testKey}, false)
	epoch := publishN(t, e.ch, "news", 5) // 3, 4 and 5 are kept
	publishN(t, e.ch, "other", 1)
	if _, err := e.ch.Publish("off.news", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		method     string // default GET
		query      string
		wantStatus int
		wantCode   string   // for an error
		wantData   []string // for a 200: the data of the publications
	}{
		{name: "last", query: "channel=news", wantStatus: http.StatusOK, wantData: []string{"3", "4", "5"}},
		{name: "last 2", query: "channel=news&limit=2", wantStatus: http.StatusOK, wantData: []string{"4", "5"}},
		{name: "limit 0 is the most", query: "channel=news&limit=0", wantStatus: http.StatusOK, wantData: []string{"3", "4", "5"}},
		{name: "limit over the most", query: "channel=news&limit=100000", wantStatus: http.StatusOK, wantData: []string{"3", "4", "5"}},
		{name: "after", query: "channel=news&after=2&epoch=" + epoch, wantStatus: http.StatusOK, wantData: []string{"3", "4", "5"}},
		{name: "after with limit", query: "channel=news&after=3&epoch=" + epoch + "&limit=1", wantStatus: http.StatusOK, wantData: []string{"4"}},
		{name: "after the last", query: "channel=news&after=5&epoch=" + epoch, wantStatus: http.StatusOK, wantData: []string{}},
		{name: "parameters in any order", query: "epoch=" + epoch + "&limit=2&after=3&channel=news", wantStatus: http.StatusOK, wantData: []string{"4", "5"}},
		{name: "HEAD", method: http.MethodHead, query: "channel=news", wantStatus: http.StatusOK},

		{name: "no channel", query: "", wantStatus: http.StatusBadRequest, wantCode: codeBadChannel},
		{name: "empty channel", query: "channel=", wantStatus: http.StatusBadRequest, wantCode: codeBadChannel},
		{name: "bad channel", query: "channel=a%20b", wantStatus: http.StatusBadRequest, wantCode: codeBadChannel},
		{name: "channel too long", query: "channel=" + strings.Repeat("a", 129), wantStatus: http.StatusBadRequest, wantCode: codeBadChannel},
		{name: "limit not a number", query: "channel=news&limit=ten", wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
		{name: "limit negative", query: "channel=news&limit=-1", wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
		{name: "limit fractional", query: "channel=news&limit=1.5", wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
		{name: "limit empty", query: "channel=news&limit=", wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
		{name: "limit past int", query: "channel=news&limit=99999999999999999999", wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
		{name: "after without epoch", query: "channel=news&after=3", wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
		{name: "epoch without after", query: "channel=news&epoch=" + epoch, wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
		{name: "after not a number", query: "channel=news&after=x&epoch=" + epoch, wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
		{name: "after negative", query: "channel=news&after=-1&epoch=" + epoch, wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
		{name: "after past 2^64", query: "channel=news&after=18446744073709551616&epoch=" + epoch, wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
		{name: "unknown parameter", query: "channel=news&limt=2", wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
		{name: "channel twice", query: "channel=news&channel=other", wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
		{name: "bad escape", query: "channel=news%zz", wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
		{name: "semicolon", query: "channel=news;limit=2", wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},

		{name: "history off", query: "channel=off.news", wantStatus: http.StatusNotFound, wantCode: codeHistoryOff},
		{name: "history off, after", query: "channel=off.news&after=1&epoch=" + epoch, wantStatus: http.StatusNotFound, wantCode: codeHistoryOff},
		{name: "epoch changed", query: "channel=news&after=3&epoch=other-epoch", wantStatus: http.StatusConflict, wantCode: codeEpochChanged},
		{name: "epoch empty", query: "channel=news&after=3&epoch=", wantStatus: http.StatusConflict, wantCode: codeEpochChanged},
		{name: "offset too old", query: "channel=news&after=1&epoch=" + epoch, wantStatus: http.StatusConflict, wantCode: codeOffsetTooOld},
		{name: "offset zero too old", query: "channel=news&after=0&epoch=" + epoch, wantStatus: http.StatusConflict, wantCode: codeOffsetTooOld},

		{name: "POST", method: http.MethodPost, query: "channel=news", wantStatus: http.StatusMethodNotAllowed, wantCode: codeMethodNotAllowed},
		{name: "PUT", method: http.MethodPut, query: "channel=news", wantStatus: http.StatusMethodNotAllowed, wantCode: codeMethodNotAllowed},
		{name: "DELETE", method: http.MethodDelete, query: "channel=news", wantStatus: http.StatusMethodNotAllowed, wantCode: codeMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newHistoryRequest(testKey, tt.query)
			if tt.method != "" {
				req.Method = tt.method
			}
			rec := e.serve(req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("got status %d (%.300s), want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("got Allow %q, want GET, HEAD", rec.Header().Get("Allow"))
			}
			if tt.wantCode != "" {
				checkError(t, rec, tt.wantCode)
				return
			}
			if tt.wantData == nil {
				return
			}
			a := decodeHistory(t, rec)
			if *a.Offset != 5 || *a.Epoch != epoch {
				t.Errorf("got position %d %q, want 5 %q", *a.Offset, *a.Epoch, epoch)
			}
			data := []string{}
			for i, p := range a.Publications {
				if p.Channel != "news" || p.Offset == 0 || (i > 0 && p.Offset != a.Publications[i-1].Offset+1) {
					t.Errorf("publication %d: got %+v, want one of news, in order", i, p)
				}
				if string(p.Data) != fmt.Sprint(p.Offset) {
					t.Errorf("publication %d: offset %d with data %s", i, p.Offset, p.Data)
				}
				data = append(data, string(p.Data))
			}
			if !slices.Equal(data, tt.wantData) {
				t.Errorf("got data %v, want %v", data, tt.wantData)
			}
		})
	}
}

// decodedHistory is a decoded 200 of GET /api/history.
type decodedHistory struct {
	Offset       *uint64 `json:"offset"`
	Epoch        *string `json:"epoch"`
	Publications []struct {
		Channel string          `json:"channel"`
		Offset  uint64          `json:"offset"`
		Data    json.RawMessage `json:"data"`
	} `json:"publications"`
}

// decodeHistory decodes rec's body as a 200 of GET /api/history: offset,
// epoch and publications (an array, not null) must all be there.
func decodeHistory(t *testing.T, rec *httptest.ResponseRecorder) decodedHistory {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", ct)
	}
	var raw map[string]json.RawMessage
	var a decodedHistory
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil || json.Unmarshal(rec.Body.Bytes(), &a) != nil {
		t.Fatalf("body %q is not a history answer: %v", rec.Body, err)
	}
	if len(raw) != 3 || a.Offset == nil || a.Epoch == nil || !strings.HasPrefix(string(raw["publications"]), "[") {
		t.Fatalf("got %s, want offset, epoch and a publications array", rec.Body)
	}
	return a
}

// TestHistoryBody checks answers byte for byte: a channel never published
// to has the zero position, and the publications are the pushes the
// subscribers got, HTML characters unescaped.
func TestHistoryBody(t *testing.T) {
	e := newEnvWith(t, historyRules, Config{APIKey: testKey}, false)
	tests := []struct {
		name, query, want string
	}{
		{"never published", "channel=fresh", `{"offset":0,"epoch":"","publications":[]}`},
		{"never published, after the zero position", "channel=fresh&after=0&epoch=", `{"offset":0,"epoch":"","publications":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.serve(newHistoryRequest(testKey, tt.query))
			if rec.Code != http.StatusOK || rec.Body.String() != tt.want+"\n" {
				t.Errorf("got %d %s, want 200 %s", rec.Code, rec.Body, tt.want)
			}
		})
	}
	t.Run("never published, after a position", func(t *testing.T) {
		rec := e.serve(newHistoryRequest(testKey, "channel=fresh&after=4&epoch=gone"))
		if rec.Code != http.StatusConflict {
			t.Fatalf("got %d %s, want 409", rec.Code, rec.Body)
		}
		checkError(t, rec, codeEpochChanged)
	})
	t.Run("published", func(t *testing.T) {
		p, err := e.ch.PublishWithPosition("news", json.RawMessage(`{"html":"<b>&</b>","n":[1,2]}`))
		if err != nil {
			t.Fatal(err)
		}
		rec := e.serve(newHistoryRequest(testKey, "channel=news"))
		want := fmt.Sprintf(`{"offset":1,"epoch":%q,"publications":[{"channel":"news","offset":1,"data":{"html":"<b>&</b>","n":[1,2]}}]}`+"\n", p.Position.Epoch)
		if rec.Code != http.StatusOK || rec.Body.String() != want {
			t.Errorf("got %d %s, want 200 %s", rec.Code, rec.Body, want)
		}
	})
}

// TestHistoryOverHTTP publishes through a real admin listener and reads
// the publications back from it.
func TestHistoryOverHTTP(t *testing.T) {
	e := newEnvWith(t, historyRules, Config{APIKey: testKey}, false)
	base := e.startAdmin(t)
	client := httpClient(t)
	for i := range 4 {
		req, err := http.NewRequest(http.MethodPost, base+"/api/publish", strings.NewReader(fmt.Sprintf(`{"channel":"room","data":%d}`, i+1)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testKey)
		if status, body := do(t, client, req); status != http.StatusOK {
			t.Fatalf("publish: got %d %s", status, body)
		}
	}
	req, err := http.NewRequest(http.MethodGet, base+"/api/history?channel=room&limit=2", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	status, body := do(t, client, req)
	var a struct {
		Offset       uint64 `json:"offset"`
		Publications []struct {
			Offset uint64 `json:"offset"`
		} `json:"publications"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &a) != nil {
		t.Fatalf("got %d %s, want 200 and JSON", status, body)
	}
	if a.Offset != 4 || len(a.Publications) != 2 || a.Publications[0].Offset != 3 || a.Publications[1].Offset != 4 {
		t.Errorf("got %s, want offset 4 and publications 3 and 4", body)
	}
}

// TestHistoryConcurrent reads a channel's history while it is published
// to (under -race): every answer is a run of consecutive offsets ending
// at the position it reports.
func TestHistoryConcurrent(t *testing.T) {
	e := newEnvWith(t, historyRules, Config{APIKey: testKey}, false)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 200 {
				if _, err := e.ch.Publish("news", json.RawMessage(fmt.Sprint(i))); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		})
		wg.Go(func() {
			for range 200 {
				rec := e.serve(newHistoryRequest(testKey, "channel=news"))
				if rec.Code != http.StatusOK {
					t.Errorf("got %d %s, want 200", rec.Code, rec.Body)
					return
				}
				var a decodedHistory // not decodeHistory: no Fatal off the test's goroutine
				if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil || a.Offset == nil {
					t.Errorf("got %s, want a history answer (%v)", rec.Body, err)
					return
				}
				for i, p := range a.Publications {
					if want := *a.Offset - uint64(len(a.Publications)-1-i); p.Offset != want {
						t.Errorf("got %s: publication %d has offset %d, want %d", rec.Body, i, p.Offset, want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// dial connects a coder/websocket client to the env's /ws; it is closed
// when the test ends.
func dial(t testing.TB, e *env) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+e.ws.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// TestMetricsHistory recovers from history over a real connection and
// checks the recovery and history series.
func TestMetricsHistory(t *testing.T) {
	e := newEnvWith(t, historyRules, Config{APIKey: testKey}, false)
	e.startWS(t)
	base := e.startAdmin(t)
	client := httpClient(t)
	epoch := publishN(t, e.ch, "news", 3)
	publishN(t, e.ch, "other", 5) // 3 kept

	c := dial(t, e)
	// Recovered: publications 2 and 3 are replayed after the ack.
	request(t, c, fmt.Sprintf(`{"op":"subscribe","channel":"news","id":1,"recover":{"offset":1,"epoch":%q}}`, epoch), `"recovered":true`)
	for _, want := range []string{`{"channel":"news","offset":2,"data":2}`, `{"channel":"news","offset":3,"data":3}`} {
		if got := read(t, c); got != want {
			t.Fatalf("replay: got %s, want %s", got, want)
		}
	}
	// Not recovered: another epoch, then a channel without history.
	request(t, c, `{"op":"subscribe","channel":"other","id":2,"recover":{"offset":1,"epoch":"gone"}}`, `"reason":"epoch_changed"`)
	request(t, c, `{"op":"subscribe","channel":"off.x","id":3,"recover":{"offset":1,"epoch":"gone"}}`, `"reason":"history_off"`)
	// A replayed push is counted once queued: it may be read first.
	eventually(t, "the replay counted", func() bool { return e.ch.Stats().Replayed == 2 })

	st := e.ch.Stats()
	if st.HistoryBytes <= 0 {
		t.Fatalf("got HistoryBytes %d, want some", st.HistoryBytes)
	}
	families := scrape(t, client, base)
	tests := []struct {
		name string
		want float64
	}{
		{"wsgate_recoveries_total", 1},
		{"wsgate_recoveries_failed_total", 2},
		{"wsgate_replayed_total", 2},
		{"wsgate_history_channels", 2},
		{"wsgate_history_entries", 6},
		{"wsgate_history_bytes", float64(st.HistoryBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := value(families, tt.name); !ok || got != tt.want {
				t.Errorf("got %v (present %v), want %v", got, ok, tt.want)
			}
		})
	}
	for _, name := range []string{"wsgate_recoveries_total", "wsgate_recoveries_failed_total", "wsgate_replayed_total"} {
		if got := families[name].GetType().String(); got != "COUNTER" {
			t.Errorf("%s is a %s, want a counter", name, got)
		}
	}
}

func TestPresenceAPI(t *testing.T) {
	rules := handler.ChannelsConfig{Rules: []handler.ChannelRule{
		{ChannelOptions: handler.ChannelOptions{Presence: true}},
		{Prefix: "off."},
	}}
	e := newEnvWith(t, rules, Config{APIKey: testKey}, false)
	tests := []struct {
		name, query string
		key         string
		wantStatus  int
		wantCode    string
		wantBody    string
	}{
		{name: "empty channel", query: "channel=room", key: testKey, wantStatus: http.StatusOK, wantBody: `{"presence":[],"clients":0,"users":0}`},
		{name: "no key", query: "channel=room", wantStatus: http.StatusUnauthorized, wantCode: codeUnauthorized},
		{name: "bad channel", query: "channel=a%20b", key: testKey, wantStatus: http.StatusBadRequest, wantCode: codeBadChannel},
		{name: "presence off", query: "channel=off.x", key: testKey, wantStatus: http.StatusNotFound, wantCode: codePresenceOff},
		{name: "unknown parameter", query: "channel=room&limit=3", key: testKey, wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
		{name: "channel twice", query: "channel=room&channel=x", key: testKey, wantStatus: http.StatusBadRequest, wantCode: codeBadQuery},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/api/presence?"+tt.query, nil)
			if tt.key != "" {
				req.Header.Set("Authorization", "Bearer "+tt.key)
			}
			rec := e.serve(req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			if tt.wantCode != "" {
				checkError(t, rec, tt.wantCode)
			}
			if tt.wantBody != "" && strings.TrimSpace(rec.Body.String()) != tt.wantBody {
				t.Errorf("got %s, want %s", rec.Body, tt.wantBody)
			}
		})
	}
}
