package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzPublish feeds arbitrary bodies to POST /api/publish, authorized: the
// answer is always 200, 400 or 413 with a JSON body of the documented
// shape, never a panic or a 5xx, and a 200 only for a body that is JSON.
func FuzzPublish(f *testing.F) {
	for _, seed := range []string{
		`{"channel":"news","data":{"title":"hello"}}`,
		`{"channel":"news","data":null}`,
		`{"messages":[{"channel":"news","data":1},{"channel":"bad channel","data":2},{"channel":"user:alice","data":3}]}`,
		`{"messages":[]}`,
		`{"channel":"news","messages":[{"channel":"news","data":1}]}`,
		`{"channel":5,"data":1}`,
		`{"chanel":"news","data":1}`,
		`{"channel":"news","data":1} {}`,
		`[{"channel":"news","data":1}]`,
		`{"channel":"` + strings.Repeat("a", 200) + `","data":1}`,
		`{"channel":"news"}`,
		``,
		`{"channel":"news","data":"\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	const key = "fuzz-key-0123456789abcdef"
	e := newEnv(f, Config{APIKey: key}, false)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/api/publish", bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+key)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		e.adm.handlePublish(w, r)
		var answer map[string]json.RawMessage
		if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
			t.Fatalf("status %d with a body that is not a JSON object: %q", w.Code, w.Body)
		}
		switch w.Code {
		case http.StatusOK:
			if !json.Valid(body) {
				t.Fatalf("200 for a body that is not JSON: %q", body)
			}
			if answer["delivered"] == nil && answer["results"] == nil {
				t.Fatalf("200 without delivered or results: %s", w.Body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			var code string
			if err := json.Unmarshal(answer["error"], &code); err != nil || code == "" || answer["message"] == nil {
				t.Fatalf("status %d without an error code and message: %s", w.Code, w.Body)
			}
		default:
			t.Fatalf("status %d for %q, want 200, 400 or 413", w.Code, body)
		}
	})
}

// FuzzHistory feeds arbitrary query strings to GET /api/history,
// authorized, on a hub with history: the answer is always 200, 400, 404
// or 409 with a JSON object, never a panic or a 5xx; a 200 has the
// position and a publications array, an error its code and message.
func FuzzHistory(f *testing.F) {
	for _, seed := range []string{
		"channel=news",
		"channel=news&limit=2",
		"channel=news&after=3&epoch=x&limit=1",
		"channel=news&after=18446744073709551615&epoch=",
		"channel=news&after=-1&epoch=x",
		"channel=news&limit=-1",
		"channel=news&limit=99999999999999999999",
		"channel=off.news",
		"channel=fresh&after=0&epoch=",
		"channel=a%20b",
		"channel=news&channel=news",
		"channel=news%zz",
		"channel=news;limit=1",
		"after=1",
		"",
	} {
		f.Add(seed)
	}
	const key = "fuzz-key-0123456789abcdef"
	e := newEnvWith(f, historyRules, Config{APIKey: key}, false)
	for i := range 5 {
		if _, err := e.ch.Publish("news", json.RawMessage{'0' + byte(i)}); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, query string) {
		r := httptest.NewRequest(http.MethodGet, "/api/history", nil)
		r.URL.RawQuery = query
		r.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		e.adm.handleHistory(w, r)
		var answer map[string]json.RawMessage
		if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
			t.Fatalf("status %d with a body that is not a JSON object: %q", w.Code, w.Body)
		}
		switch w.Code {
		case http.StatusOK:
			var pubs []json.RawMessage
			if answer["offset"] == nil || answer["epoch"] == nil || json.Unmarshal(answer["publications"], &pubs) != nil || pubs == nil {
				t.Fatalf("200 without offset, epoch and publications: %s", w.Body)
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusConflict:
			var code string
			if err := json.Unmarshal(answer["error"], &code); err != nil || code == "" || answer["message"] == nil {
				t.Fatalf("status %d without an error code and message: %s", w.Code, w.Body)
			}
		default:
			t.Fatalf("status %d for %q, want 200, 400, 404 or 409", w.Code, query)
		}
	})
}
