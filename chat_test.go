package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestChatDemoInBrowser opens the embedded chat page of the real binary in
// headless Chromium twice: the two pages join a room, count each other and
// exchange messages. The screenshot is kept in test-artifacts/ (or
// $WSGATE_ARTIFACTS).
func TestChatDemoInBrowser(t *testing.T) {
	node := filepath.Join("wsconn", "testdata", "interop", "node")
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
	addr, _ := startGate(t)
	dir := os.Getenv("WSGATE_ARTIFACTS")
	if dir == "" {
		dir = "test-artifacts"
	}
	dir, _ = filepath.Abs(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "chat.png")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "chat.js", "http://"+addr, shot)
	cmd.Dir = node
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("chat demo in the browser: %v", err)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
}
