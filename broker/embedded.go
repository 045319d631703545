package broker

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Embedded is a NATS server run inside this process, for the workers of one
// machine when no external NATS is configured.
type Embedded struct {
	s *server.Server
}

// StartEmbedded starts a NATS server listening on host:port (port 0: a free
// port) and waits until it accepts connections.
func StartEmbedded(host string, port int) (*Embedded, error) {
	if port == 0 {
		port = server.RANDOM_PORT
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "wsgate-embedded",
		Host:       host,
		Port:       port,
		NoLog:      true,
		NoSigs:     true, // the supervisor handles signals
		MaxPayload: 8 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: failed to create embedded NATS: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("broker: embedded NATS on %s:%d did not start", host, port)
	}
	return &Embedded{s: s}, nil
}

// URL is the address clients connect to.
func (e *Embedded) URL() string { return e.s.ClientURL() }

// Shutdown stops the server and waits for it.
func (e *Embedded) Shutdown() {
	e.s.Shutdown()
	e.s.WaitForShutdown()
}
