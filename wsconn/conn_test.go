package wsconn

import "testing"

// TestPhaseOnlyForward: setPhase never moves a connection back, and leaves
// the flags and wake requests that share Conn.state alone.
func TestPhaseOnlyForward(t *testing.T) {
	c := &conn{}
	if got := c.phaseNow(); got != phaseHandshake {
		t.Fatalf("new Conn in phase %d, want phaseHandshake", got)
	}
	c.state.Or(stDeflate | reqShutdown)
	for _, step := range []struct{ set, want phase }{
		{phaseOpen, phaseOpen},
		{phaseHandshake, phaseOpen},
		{phaseClosing, phaseClosing},
		{phaseOpen, phaseClosing},
		{phaseClosed, phaseClosed},
		{phaseClosing, phaseClosed},
	} {
		c.setPhase(step.set)
		if got := c.phaseNow(); got != step.want {
			t.Fatalf("setPhase(%d): phase %d, want %d", step.set, got, step.want)
		}
	}
	if !c.deflate() {
		t.Fatal("setPhase cleared stDeflate")
	}
	if got := c.takeRequests(); got != reqShutdown {
		t.Fatalf("requests %#x after setPhase, want reqShutdown", got)
	}
	if got := c.phaseNow(); got != phaseClosed {
		t.Fatalf("takeRequests changed the phase to %d", got)
	}
}
