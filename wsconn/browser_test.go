package wsconn

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestInteropChromium drives headless Chromium, whose WebSocket is the one
// browsers use, against the server over ws:// and wss:// (the certificate
// is this test's own, which the browser is told to accept).
func TestInteropChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	dir := filepath.Join("testdata", "interop", "node")
	chromium := "/usr/bin/chromium"
	missing := ""
	if _, err := os.Stat(chromium); err != nil {
		missing = "Debian's chromium is not installed"
	} else if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		missing = "playwright-core is not installed"
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s: run scripts/deps.sh", missing)
		}
		t.Skipf("%s: run scripts/deps.sh", missing)
	}
	channels, err := newChannels()
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]Handler{"/echo": echoHandler{}, "/ws": channels}
	plain := startServer(t, Config{Routes: routes})
	secure, _ := startTLSServer(t, Config{Routes: routes})
	deflate := startServer(t, Config{Routes: routes, Compression: true}) // browsers offer permessage-deflate
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "browser.js",
		"ws://"+plain.Addr().String(), "wss://"+secure.Addr().String(), "ws://"+deflate.Addr().String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("browser scenarios failed: %v", err)
	}
	// The same scenario's repetitive messages: compressed, far fewer bytes.
	if d, p := deflate.Stats().BytesOut, plain.Stats().BytesOut; d*4 > p {
		t.Errorf("with permessage-deflate the server sent %d bytes, without %d: not negotiated or not compressed", d, p)
	}
}
