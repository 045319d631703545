package wsconn

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPages(t *testing.T) {
	srv := startServer(t, Config{Pages: map[string]Page{
		"/": {ContentType: "text/html; charset=utf-8", Body: []byte("<h1>hello</h1>")},
	}})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + srv.Addr().String() + "/?room=lobby")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "<h1>hello</h1>" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("got %d %q %q, want the page", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	other, err := client.Get("http://" + srv.Addr().String() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	other.Body.Close()
	if other.StatusCode == 200 {
		t.Fatalf("GET /other: got 200, want an error status")
	}
	// An upgrade request for the page's path is not answered with the page.
	if got := rawHandshakeStatus(t, srv, "/"); got != http.StatusNotFound {
		t.Fatalf("upgrade on /: got %d, want 404 (no route)", got)
	}
	// The page counts as a page, not as a handshake outcome.
	st := srv.Stats()
	if st.PagesServed != 1 || st.Handshakes[0] != 0 || st.Handshakes[http.StatusOK] != 0 {
		t.Fatalf("pages served %d, handshakes %v; want 1 page and no 200 or other handshake", st.PagesServed, st.Handshakes)
	}
}

func TestCRLFOnly(t *testing.T) {
	for _, tt := range []struct {
		req  string
		want bool
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET / HTTP/1.1\nHost: x\r\n\r\n", false}, // found by FuzzUpgrade
		{"GET / HTTP/1.1\r\nHost: x\r\r\n\r\n", false},
		{"\nGET / HTTP/1.1\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", false},
	} {
		if got := crlfOnly([]byte(tt.req)); got != tt.want {
			t.Errorf("crlfOnly(%q) = %v, want %v", tt.req, got, tt.want)
		}
	}
}

func TestObserveHandshake(t *testing.T) {
	var mu sync.Mutex
	var seen []time.Duration
	srv := startServer(t, Config{ObserveHandshake: func(d time.Duration) {
		mu.Lock()
		seen = append(seen, d)
		mu.Unlock()
	}})
	invDial(t, srv, "/echo").Close()
	if got := rawHandshakeStatus(t, srv, "/nowhere"); got != http.StatusNotFound {
		t.Fatalf("got %d, want 404", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] < 0 || seen[0] > 5*time.Second {
		t.Fatalf("observed %v, want one plausible handshake time (rejections are not observed)", seen)
	}
}
