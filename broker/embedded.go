package broker

import (
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Embedded is a NATS server run inside this process, for the workers of one
// machine when no external NATS is configured. JetStream is on: it keeps
// the channels' histories.
type Embedded struct {
	s       *server.Server
	tempDir string // the JetStream directory made for this server, removed at Shutdown
}

// EmbeddedConfig configures an embedded NATS server.
type EmbeddedConfig struct {
	Host string
	Port int // 0: a free port
	// StoreDir is JetStream's directory: where file-storage streams live
	// and survive a restart. "": a temporary directory, removed at
	// Shutdown (enough for memory storage).
	StoreDir string
}

// StartEmbedded starts a NATS server with JetStream listening on
// host:port (port 0: a free port) and waits until it accepts connections.
func StartEmbedded(host string, port int) (*Embedded, error) {
	return StartEmbeddedConfig(EmbeddedConfig{Host: host, Port: port})
}

// StartEmbeddedConfig is StartEmbedded with every setting.
func StartEmbeddedConfig(cfg EmbeddedConfig) (*Embedded, error) {
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	e := &Embedded{}
	dir := cfg.StoreDir
	if dir == "" {
		d, err := os.MkdirTemp("", "wsgate-jetstream-")
		if err != nil {
			return nil, fmt.Errorf("broker: failed to make a JetStream directory: %w", err)
		}
		dir, e.tempDir = d, d
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "wsgate-embedded",
		Host:       cfg.Host,
		Port:       port,
		NoLog:      true,
		NoSigs:     true, // the supervisor handles signals
		MaxPayload: 8 << 20,
		JetStream:  true,
		StoreDir:   dir,
	})
	if err != nil {
		e.removeTemp()
		return nil, fmt.Errorf("broker: failed to create embedded NATS: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		e.removeTemp()
		return nil, fmt.Errorf("broker: embedded NATS on %s:%d did not start", cfg.Host, cfg.Port)
	}
	e.s = s
	return e, nil
}

// URL is the address clients connect to.
func (e *Embedded) URL() string { return e.s.ClientURL() }

// Shutdown stops the server and waits for it.
func (e *Embedded) Shutdown() {
	e.s.Shutdown()
	e.s.WaitForShutdown()
	e.removeTemp()
}

func (e *Embedded) removeTemp() {
	if e.tempDir != "" {
		_ = os.RemoveAll(e.tempDir)
	}
}
