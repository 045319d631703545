package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The channels layer: wsgate's /ws protocol (docs/protocol.md) over a Conn
// that reconnects. A Subscription survives reconnects: on every new
// connection the Client subscribes again with "recover" from the last
// offset it delivered, so the handler gets every publication the server
// still has, once and in order, and is told (OnUnrecovered) when the
// server cannot recover and the application must reload its state.

// Position is a place in a channel's history.
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// Publication is one publication delivered to a Subscription.
type Publication struct {
	Channel string
	Offset  uint64 // 0 for a channel without history
	Data    json.RawMessage
}

// Presence is one subscriber in a presence answer or a join or leave.
type Presence struct {
	Client string          `json:"client"`
	User   string          `json:"user,omitempty"`
	Info   json.RawMessage `json:"info,omitempty"`
}

// ServerError is an error reply of the server: its code and message.
type ServerError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *ServerError) Error() string { return "wsgate: " + e.Code + ": " + e.Message }

// ErrLost is returned by a request whose connection was lost before its
// answer came: whether it was done is not known (a publish may have been
// stored; History and Presence can be asked again).
var ErrLost = errors.New("client: connection lost before the answer")

// ClientOptions configure a Client.
type ClientOptions struct {
	// Options of the connection. Reconnect defaults to a Backoff of
	// 500ms to 30s, forever.
	Options
	// RequestTimeout bounds Publish, History and Presence when their ctx
	// has no deadline. Default 10s.
	RequestTimeout time.Duration
	// Token, if set, supplies the JWT: for each connection's handshake
	// (Authorization: Bearer) and, RefreshBefore its expiry, for the
	// refresh op on the open connection, so that the server never closes
	// it for an expired token. A zero expires is never refreshed.
	Token func(ctx context.Context) (token string, expires time.Time, err error)
	// RefreshBefore is how long before the expiry a token is refreshed.
	// Default: a tenth of its life, at least a second.
	RefreshBefore time.Duration
}

// SubscribeOptions are a Subscription's events besides its publications.
type SubscribeOptions struct {
	// OnUnrecovered is called when a resubscribe could not recover what
	// the subscription missed (reason: the server's, such as
	// epoch_changed or offset_too_old): reload the channel's state.
	OnUnrecovered func(reason string)
	// OnJoin and OnLeave, if either is set, ask for the channel's join
	// and leave pushes.
	OnJoin, OnLeave func(Presence)
	// OnError is called when the server refuses the subscribe (forbidden,
	// too_many_subscriptions...); the Client does not retry it until the
	// next connection.
	OnError func(err error)
}

// Client is a wsgate channels client over a reconnecting Conn.
type Client struct {
	conn *Conn
	opts ClientOptions

	mu      sync.Mutex
	subs    map[string]*Subscription
	waiting map[string]chan reply // by request id
	next    uint64
	expires time.Time     // the current token's
	issued  time.Time     // when it was obtained
	stopRef chan struct{} // closed when the connection the refresher serves ends
}

// Subscription is a channel subscribed through a Client.
type Subscription struct {
	Channel string
	c       *Client
	handler func(Publication)
	opts    SubscribeOptions
	pos     Position // guarded by c.mu: the last publication delivered
}

// reply is a decoded server message with an id.
type reply struct {
	raw json.RawMessage
	err error
}

// message is every field a server message may have.
type message struct {
	Op           string            `json:"op"`
	ID           json.RawMessage   `json:"id"`
	Channel      string            `json:"channel"`
	Offset       uint64            `json:"offset"`
	Epoch        string            `json:"epoch"`
	Data         json.RawMessage   `json:"data"`
	Recovered    *bool             `json:"recovered"`
	Reason       string            `json:"reason"`
	Code         string            `json:"code"`
	Message      string            `json:"message"`
	Join         *Presence         `json:"join"`
	Leave        *Presence         `json:"leave"`
	Publications []json.RawMessage `json:"publications"`
	Presence     []Presence        `json:"presence"`
}

// NewClient connects to a wsgate /ws URL in the background and keeps the
// connection and its subscriptions alive until Close.
func NewClient(url string, opts ClientOptions) *Client {
	if opts.Reconnect == nil {
		opts.Reconnect = &Backoff{}
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	c := &Client{opts: opts, subs: map[string]*Subscription{}, waiting: map[string]chan reply{}}
	co := opts.Options
	if opts.Token != nil {
		co.HeaderFunc = func(ctx context.Context) (http.Header, error) {
			tok, exp, err := opts.Token(ctx)
			if err != nil {
				return nil, err
			}
			c.mu.Lock()
			c.expires, c.issued = exp, time.Now()
			c.mu.Unlock()
			h := opts.Header.Clone()
			if h == nil {
				h = http.Header{}
			}
			h.Set("Authorization", "Bearer "+tok)
			return h, nil
		}
	}
	userOpen, userMsg, userClose := co.OnOpen, co.OnMessage, co.OnClose
	co.OnOpen = func(conn *Conn) {
		if userOpen != nil {
			userOpen(conn)
		}
		c.resubscribe(conn)
		if opts.Token != nil {
			stop := make(chan struct{})
			c.mu.Lock()
			c.stopRef = stop
			c.mu.Unlock()
			go c.refresher(conn, stop)
		}
	}
	co.OnMessage = func(conn *Conn, t MessageType, data []byte) {
		c.dispatch(data)
		if userMsg != nil {
			userMsg(conn, t, data)
		}
	}
	co.OnClose = func(conn *Conn, e CloseEvent) {
		c.mu.Lock()
		if c.stopRef != nil {
			close(c.stopRef)
			c.stopRef = nil
		}
		c.mu.Unlock()
		c.failWaiting()
		if userClose != nil {
			userClose(conn, e)
		}
	}
	c.conn = Connect(url, co)
	return c
}

// Conn is the Client's connection.
func (c *Client) Conn() *Conn { return c.conn }

// Close closes the connection (1000) and ends the Client.
func (c *Client) Close() error { return c.conn.Close(1000, "") }

// Subscribe subscribes to channel now, if connected, and again on every
// new connection, recovering what it missed meanwhile; handler gets each
// publication once, in order, on the Client's goroutine.
func (c *Client) Subscribe(channel string, handler func(Publication), opts SubscribeOptions) *Subscription {
	s := &Subscription{Channel: channel, c: c, handler: handler, opts: opts}
	c.mu.Lock()
	c.subs[channel] = s
	c.mu.Unlock()
	_ = c.conn.Send(s.request(c.conn)) // not connected: OnOpen will
	return s
}

// request is the subscribe request of s.
func (s *Subscription) request(*Conn) []byte {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	req := map[string]any{"op": "subscribe", "channel": s.Channel, "id": "s:" + s.Channel}
	if s.pos.Epoch != "" {
		req["recover"] = s.pos
	}
	if s.opts.OnJoin != nil || s.opts.OnLeave != nil {
		req["join_leave"] = true
	}
	b, _ := json.Marshal(req)
	return b
}

// Unsubscribe ends s.
func (s *Subscription) Unsubscribe() {
	s.c.mu.Lock()
	delete(s.c.subs, s.Channel)
	s.c.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"op": "unsubscribe", "channel": s.Channel})
	_ = s.c.conn.Send(b)
}

// Position returns the position of the last publication s delivered.
func (s *Subscription) Position() Position {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.pos
}

func (c *Client) resubscribe(conn *Conn) {
	c.mu.Lock()
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, s := range subs {
		_ = conn.Send(s.request(conn))
	}
}

// dispatch routes one server message.
func (c *Client) dispatch(data []byte) {
	var m message
	if json.Unmarshal(data, &m) != nil {
		return
	}
	if m.Op == "" { // a push
		c.mu.Lock()
		s := c.subs[m.Channel]
		c.mu.Unlock()
		if s == nil {
			return
		}
		switch {
		case m.Join != nil:
			if s.opts.OnJoin != nil {
				s.opts.OnJoin(*m.Join)
			}
		case m.Leave != nil:
			if s.opts.OnLeave != nil {
				s.opts.OnLeave(*m.Leave)
			}
		default:
			c.mu.Lock()
			dup := m.Offset != 0 && m.Offset <= s.pos.Offset
			if !dup && m.Offset != 0 {
				s.pos.Offset = m.Offset
			}
			c.mu.Unlock()
			if !dup {
				s.handler(Publication{Channel: m.Channel, Offset: m.Offset, Data: m.Data})
			}
		}
		return
	}
	var id string
	if json.Unmarshal(m.ID, &id) != nil {
		return
	}
	if ch, ok := stringsCut(id, "s:"); ok { // a subscribe's answer
		c.subscribed(ch, &m)
		return
	}
	c.mu.Lock()
	w := c.waiting[id]
	delete(c.waiting, id)
	c.mu.Unlock()
	if w == nil {
		return
	}
	if m.Op == "error" {
		w <- reply{err: &ServerError{Code: m.Code, Message: m.Message}}
		return
	}
	w <- reply{raw: append(json.RawMessage(nil), data...)}
}

func stringsCut(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}

// subscribed handles the answer to a subscription's subscribe.
func (c *Client) subscribed(channel string, m *message) {
	c.mu.Lock()
	s := c.subs[channel]
	if s == nil {
		c.mu.Unlock()
		return
	}
	if m.Op == "error" {
		c.mu.Unlock()
		if s.opts.OnError != nil {
			s.opts.OnError(&ServerError{Code: m.Code, Message: m.Message})
		}
		return
	}
	unrecovered := m.Recovered != nil && !*m.Recovered
	if unrecovered || m.Recovered == nil && s.pos.Epoch != m.Epoch {
		// A first subscribe, or one that could not recover: from here
		// on. (A repeated subscribe's ack, same epoch, changes nothing:
		// replays of the first may still be coming.)
		s.pos = Position{Offset: m.Offset, Epoch: m.Epoch}
	}
	c.mu.Unlock()
	if unrecovered && s.opts.OnUnrecovered != nil {
		s.opts.OnUnrecovered(m.Reason)
	}
}

// failWaiting answers every waiting request with ErrLost.
func (c *Client) failWaiting() {
	c.mu.Lock()
	w := c.waiting
	c.waiting = map[string]chan reply{}
	c.mu.Unlock()
	for _, ch := range w {
		ch <- reply{err: ErrLost}
	}
}

// request sends req with a fresh id and waits for its answer.
func (c *Client) request(ctx context.Context, req map[string]any) (json.RawMessage, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.RequestTimeout)
		defer cancel()
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	c.next++
	id := "r" + strconv.FormatUint(c.next, 10)
	c.waiting[id] = ch
	c.mu.Unlock()
	req["id"] = id
	b, err := json.Marshal(req)
	if err == nil {
		err = c.conn.Send(b)
	}
	if err != nil {
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
		return nil, err
	}
	select {
	case r := <-ch:
		return r.raw, r.err
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
		return nil, fmt.Errorf("client: no answer: %w", ctx.Err())
	}
}

// Publish publishes data (marshalled to JSON) to channel and returns its
// position once the server acknowledged it (stored, for a channel with
// history).
func (c *Client) Publish(ctx context.Context, channel string, data any) (Position, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Position{}, err
	}
	b, err := c.request(ctx, map[string]any{"op": "publish", "channel": channel, "data": json.RawMessage(raw)})
	if err != nil {
		return Position{}, err
	}
	var p Position
	err = json.Unmarshal(b, &p)
	return p, err
}

// History returns channel's last limit publications (0: the server's
// most), oldest first, and the channel's position.
func (c *Client) History(ctx context.Context, channel string, limit int) (Position, []Publication, error) {
	b, err := c.request(ctx, map[string]any{"op": "history", "channel": channel, "limit": limit})
	if err != nil {
		return Position{}, nil, err
	}
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return Position{}, nil, err
	}
	pubs := make([]Publication, 0, len(m.Publications))
	for _, raw := range m.Publications {
		var p message
		if json.Unmarshal(raw, &p) == nil {
			pubs = append(pubs, Publication{Channel: p.Channel, Offset: p.Offset, Data: p.Data})
		}
	}
	return Position{Offset: m.Offset, Epoch: m.Epoch}, pubs, nil
}

// Presence returns channel's subscribers on every server process.
func (c *Client) Presence(ctx context.Context, channel string) ([]Presence, error) {
	b, err := c.request(ctx, map[string]any{"op": "presence", "channel": channel})
	if err != nil {
		return nil, err
	}
	var m message
	err = json.Unmarshal(b, &m)
	return m.Presence, err
}

// refresher refreshes the token of one open connection before it
// expires, until stop.
func (c *Client) refresher(conn *Conn, stop <-chan struct{}) {
	for {
		c.mu.Lock()
		exp, issued := c.expires, c.issued
		c.mu.Unlock()
		if exp.IsZero() {
			return
		}
		before := c.opts.RefreshBefore
		if before == 0 {
			before = max(exp.Sub(issued)/10, time.Second)
		}
		t := time.NewTimer(time.Until(exp.Add(-before)))
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.RequestTimeout)
		tok, newExp, err := c.opts.Token(ctx)
		if err == nil {
			_, err = c.request(ctx, map[string]any{"op": "refresh", "token": tok})
		}
		cancel()
		if err != nil {
			if c.opts.OnError != nil {
				c.opts.OnError(conn, fmt.Errorf("client: token refresh: %w", err))
			}
			// The server closes at the old expiry; the reconnect gets a
			// fresh token. Wait for that.
			select {
			case <-stop:
			case <-time.After(time.Until(exp)):
			}
			return
		}
		c.mu.Lock()
		c.expires, c.issued = newExp, time.Now()
		c.mu.Unlock()
	}
}
