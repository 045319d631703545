package gateway

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestChatDemoInBrowser opens the embedded chat page of the real binary in
// headless Chromium: pages join a room, are counted by the server's
// presence, exchange messages, and a late one is shown the last messages;
// then the server (with file storage) restarts and the pages reconnect by
// themselves, recover with no line lost or doubled, and talk again. The screenshot is kept in test-artifacts/ (or
// $WSGATE_ARTIFACTS).
func TestChatDemoInBrowser(t *testing.T) {
	node := browserScripts(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	store := []string{"-history-store", "file", "-history-dir", t.TempDir()} // the history outlives the restart
	_, stop := startGateAt(t, addr, store...)
	dir := os.Getenv("WSGATE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "test-artifacts") // the module root's, where scripts/test.sh looks
	}
	dir, _ = filepath.Abs(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "chat.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "chat.js", "http://"+addr, shot)
	cmd.Dir = node
	var out, errOut bytes.Buffer
	cmd.Stderr = &errOut
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// "RESTART NOW": the pages are talking; restart the server on the
	// same address and let them find it again.
	restarted := false
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		out.WriteString(lines.Text() + "\n")
		if lines.Text() == "RESTART NOW" && !restarted {
			stop()
			startGateAt(t, addr, store...)
			restarted = true
		}
	}
	err = cmd.Wait()
	t.Logf("chat.js said:\n%s%s", out.String(), errOut.String())
	if err != nil {
		t.Fatalf("chat demo in the browser: %v", err)
	}
	if !restarted {
		t.Fatal("chat.js never asked for the restart")
	}
	if st, err := os.Stat(shot); err != nil || st.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
}

// browserScripts returns the directory of the playwright scripts, failing
// the test in CI and skipping it elsewhere when Chromium or playwright-core
// is missing.
func browserScripts(t *testing.T) string {
	t.Helper()
	node := filepath.Join("..", "wsconn", "testdata", "interop", "node")
	missing := ""
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		missing = "Debian's chromium is not installed"
	} else if _, err := os.Stat(filepath.Join(node, "node_modules", "playwright-core")); err != nil {
		missing = "playwright-core is not installed"
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s: run scripts/deps.sh", missing)
		}
		t.Skipf("%s: run scripts/deps.sh", missing)
	}
	return node
}

// TestChatDemoRefusedToken opens the chat page of a server that checks
// tokens, without one: the page must say that the token was refused (the
// server's 4401 close, which the browser can read where it cannot read an
// HTTP 401) and stop retrying, rather than "disconnected, retrying" forever.
func TestChatDemoRefusedToken(t *testing.T) {
	node := browserScripts(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startGateAt(t, addr, "-jwt-secret", "a test secret of at least thirty-two bytes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "refused.js", "http://"+addr)
	cmd.Dir = node
	out, err := cmd.CombinedOutput()
	t.Logf("refused.js said:\n%s", out)
	if err != nil {
		t.Fatalf("refused token in the browser: %v", err)
	}
}
