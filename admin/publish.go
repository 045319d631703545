package admin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/wsgate/wsgate/handler"
)

// Error codes of the JSON error bodies; the package comment says when each
// is sent. bad_json, bad_channel and the history codes are the /ws
// protocol's codes for the same conditions.
const (
	codeBadJSON              = handler.CodeBadJSON
	codeBadChannel           = handler.CodeBadChannel
	codeHistoryOff           = handler.CodeHistoryOff
	codePresenceOff          = handler.CodePresenceOff
	codeEpochChanged         = handler.CodeEpochChanged
	codeOffsetTooOld         = handler.CodeOffsetTooOld
	codeBadQuery             = "bad_query"
	codeInternal             = "internal_error"
	codeBadData              = "bad_data"
	codeBadBatch             = "bad_batch"
	codeUnauthorized         = "unauthorized"
	codePublishingDisabled   = "publishing_disabled"
	codeMethodNotAllowed     = "method_not_allowed"
	codeBodyTooLarge         = "body_too_large"
	codeUnsupportedMediaType = "unsupported_media_type"
	codeUnavailable          = handler.CodeUnavailable
)

// message is one publish: a channel and the JSON value pushed to it.
type message struct {
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// publishRequest is the body of /api/publish: one message, or a batch in
// Messages. Channel is a pointer to tell a batch that also names a channel.
type publishRequest struct {
	Channel  *string         `json:"channel"`
	Data     json.RawMessage `json:"data"`
	Messages []message       `json:"messages"`
}

// result is one message's outcome, in a batch answer.
type result struct {
	Delivered *int   `json:"delivered,omitempty"`
	Offset    uint64 `json:"offset,omitempty"` // with history: the publication's position
	Epoch     string `json:"epoch,omitempty"`
	Error     string `json:"error,omitempty"`
}

// errorBody is the answer to a request that failed as a whole.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// requestError is a failure with its HTTP status and error code.
type requestError struct {
	status  int
	code    string
	message string
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, "use POST")
		return
	}
	if !s.keyed(w, r, "publishing") {
		return
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, codeUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	req, rerr := decodePublish(w, r)
	if rerr != nil {
		writeError(w, rerr.status, rerr.code, rerr.message)
		return
	}
	if req.Messages != nil {
		s.publishBatch(w, req.Messages)
		return
	}
	channel := ""
	if req.Channel != nil {
		channel = *req.Channel
	}
	p, err := s.cfg.Channels.PublishWithPosition(channel, req.Data)
	if err != nil {
		code, status := codeOf(err), http.StatusBadRequest
		if code == codeUnavailable {
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, status, code, codeMessages[code])
		return
	}
	s.cfg.Logger.Debug("admin: published", "channel", channel, "delivered", p.Delivered, "offset", p.Position.Offset)
	writeJSON(w, http.StatusOK, result{Delivered: delivered(p), Offset: p.Position.Offset, Epoch: p.Position.Epoch})
}

// delivered is the "delivered" of an answer: the local subscribers
// reached, or none when the publication was stored and reaches them
// through the store (handler.Published).
func delivered(p handler.Published) *int {
	if p.Delivered < 0 {
		return nil
	}
	return &p.Delivered
}

// publishBatch publishes msgs in order and answers each one's outcome; a
// bad message does not stop the others.
func (s *Server) publishBatch(w http.ResponseWriter, msgs []message) {
	results := make([]result, len(msgs))
	ok := 0
	for i, m := range msgs {
		p, err := s.cfg.Channels.PublishWithPosition(m.Channel, m.Data)
		if err != nil {
			results[i].Error = codeOf(err)
			continue
		}
		results[i].Delivered = delivered(p)
		results[i].Offset, results[i].Epoch = p.Position.Offset, p.Position.Epoch
		ok++
	}
	s.cfg.Logger.Debug("admin: published a batch", "messages", len(msgs), "accepted", ok)
	writeJSON(w, http.StatusOK, struct {
		Results []result `json:"results"`
	}{results})
}

// keyed reports whether r may use an endpoint that needs the API key
// (POST /api/publish, GET /api/history). If not, it answers: 403
// publishing_disabled, "<what> disabled", when no key is configured, and
// 401 to a request without the key.
func (s *Server) keyed(w http.ResponseWriter, r *http.Request, what string) bool {
	if s.cfg.APIKey == "" {
		writeError(w, http.StatusForbidden, codePublishingDisabled, what+" disabled: no API key")
		return false
	}
	if !s.authorized(r) {
		s.refusedKey(r)
		w.Header().Set("WWW-Authenticate", `Bearer realm="wsgate-admin"`)
		writeError(w, http.StatusUnauthorized, codeUnauthorized, "missing or bad API key: send Authorization: Bearer <key>")
		return false
	}
	return true
}

// authorized reports whether r carries "Authorization: Bearer <APIKey>".
// Both keys are hashed first, so the comparison takes the same time
// whatever the length or content of the key sent.
func (s *Server) authorized(r *http.Request) bool {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(key)))
	return subtle.ConstantTimeCompare(got[:], s.keyHash[:]) == 1
}

// refusedKey counts a request refused for its API key and logs it at warn
// level, at most once per Config.WarnInterval: anyone who reaches the port
// can send bad keys as fast as it answers. A warning carries "suppressed",
// how many refusals were left out since the previous one, when there were
// any. Safe for concurrent use: the counts are atomic, so a refusal left
// out while a warning is being written shows in the next one.
func (s *Server) refusedKey(r *http.Request) {
	s.unauthorized.Add(1)
	if !s.keyWarn.Allow() {
		s.keyWarnSkipped.Add(1)
		return
	}
	args := []any{"remote", r.RemoteAddr, "path", r.URL.Path}
	if n := s.keyWarnSkipped.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	s.cfg.Logger.Warn("admin: API request refused: missing or bad API key", args...)
}

// isJSON reports whether a Content-Type header names application/json
// (parameters such as charset allowed).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// decodePublish reads r's body, at most MaxBodyBytes, into a
// publishRequest and checks its shape (not its channels and data: Publish
// does that).
func decodePublish(w http.ResponseWriter, r *http.Request) (publishRequest, *requestError) {
	var req publishRequest
	tooLarge := &requestError{http.StatusRequestEntityTooLarge, codeBodyTooLarge,
		"body over " + strconv.Itoa(MaxBodyBytes) + " bytes"}
	if r.ContentLength > MaxBodyBytes {
		return req, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return req, tooLarge
		}
		return req, &requestError{http.StatusBadRequest, codeBadJSON, "failed to read the body: " + err.Error()}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, &requestError{http.StatusBadRequest, codeBadJSON, "body must be a JSON object " +
			`{"channel":…,"data":…} or {"messages":[…]}: ` + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, &requestError{http.StatusBadRequest, codeBadJSON, "body must hold one JSON object, nothing after it"}
	}
	switch {
	case req.Messages == nil:
		return req, nil
	case req.Channel != nil || req.Data != nil:
		return req, &requestError{http.StatusBadRequest, codeBadBatch, `give "channel" and "data", or "messages", not both`}
	case len(req.Messages) == 0:
		return req, &requestError{http.StatusBadRequest, codeBadBatch, `"messages" is empty`}
	case len(req.Messages) > MaxBatch:
		return req, &requestError{http.StatusBadRequest, codeBadBatch,
			`"messages" holds ` + strconv.Itoa(len(req.Messages)) + ", more than " + strconv.Itoa(MaxBatch)}
	}
	return req, nil
}

// codeOf maps an error of Channels.Publish to its error code.
func codeOf(err error) string {
	switch {
	case errors.Is(err, handler.ErrBadChannel):
		return codeBadChannel
	case errors.Is(err, handler.ErrUnavailable):
		return codeUnavailable
	}
	return codeBadData
}

// codeMessages holds the text of the per-message error codes.
var codeMessages = map[string]string{
	codeBadChannel:  "channel must be non-empty, within the length limit, and made of A-Z a-z 0-9 _ . : @ / -",
	codeBadData:     `"data" must be one JSON value`,
	codeUnavailable: "the history store (NATS JetStream) did not store the publication, so it was not published; retry",
}

// writeError answers status with {"error":code,"message":message}.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, errorBody{Error: code, Message: message})
}
