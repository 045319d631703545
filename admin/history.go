package admin

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/internal/wsproto"
)

// GET /api/history reads a channel's kept publications for a backend: to
// load a channel's recent state, or to catch up after a position, with
// the API key of POST /api/publish. It is handler.Channels.History, as
// the /ws history request is, without the subscribe permission check: the
// key is the operator's.

// historyParams are the query parameters GET /api/history knows.
var historyParams = []string{"channel", "limit", "after", "epoch"}

// historyQuery is what one GET /api/history asks.
type historyQuery struct {
	channel string
	limit   int               // 0: MaxHistoryLimit
	after   *handler.Position // nil: the last publications
}

// historyAnswer is the body of a 200 from GET /api/history: the channel's
// position and the pushes, oldest first, as /ws subscribers got them.
type historyAnswer struct {
	Offset       uint64            `json:"offset"`
	Epoch        string            `json:"epoch"`
	Publications []json.RawMessage `json:"publications"`
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	if !s.keyed(w, r, "GET /api/history") {
		return
	}
	q, rerr := parseHistoryQuery(r.URL.RawQuery)
	if rerr != nil {
		writeError(w, rerr.status, rerr.code, rerr.message)
		return
	}
	pos, pushes, err := s.cfg.Channels.History(q.channel, q.after, q.limit)
	if err != nil {
		rerr := historyError(err)
		writeError(w, rerr.status, rerr.code, rerr.message)
		return
	}
	answer := historyAnswer{Offset: pos.Offset, Epoch: pos.Epoch, Publications: make([]json.RawMessage, len(pushes))}
	for i, p := range pushes {
		answer.Publications[i] = p // shared with the history; only read
	}
	writeJSON(w, http.StatusOK, answer)
}

// parseHistoryQuery reads the query string of GET /api/history. Every
// parameter is optional but channel (History checks it) and appears at
// most once; after and epoch come together. An unknown parameter is
// refused rather than ignored: a misspelt limit would silently ask for
// the most.
func parseHistoryQuery(raw string) (historyQuery, *requestError) {
	var q historyQuery
	bad := func(message string) (historyQuery, *requestError) {
		return historyQuery{}, &requestError{http.StatusBadRequest, codeBadQuery, message}
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return bad("query string: " + err.Error())
	}
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		switch {
		case !slices.Contains(historyParams, k):
			return bad("unknown parameter " + strconv.Quote(k) + ": use channel, limit, after and epoch")
		case len(vals[k]) > 1:
			return bad("parameter " + k + " given more than once")
		}
	}
	q.channel = vals.Get("channel")
	if vals.Has("limit") {
		n, err := strconv.Atoi(vals.Get("limit"))
		if err != nil || n < 0 {
			return bad("limit must be an integer, 0 or more (0: the most, " + strconv.Itoa(handler.DefaultMaxHistoryLimit) + " by default)")
		}
		q.limit = n
	}
	switch {
	case vals.Has("after") != vals.Has("epoch"):
		return bad("after and epoch go together: the offset and epoch of a position the answer starts after")
	case vals.Has("after"):
		offset, err := strconv.ParseUint(vals.Get("after"), 10, 64)
		if err != nil {
			return bad("after must be an offset, an integer from 0 to 2^64-1")
		}
		q.after = &handler.Position{Offset: offset, Epoch: vals.Get("epoch")}
	}
	return q, nil
}

// historyError maps an error of Channels.History to its answer.
func historyError(err error) *requestError {
	var status int
	var code string
	switch {
	case errors.Is(err, handler.ErrBadChannel):
		return &requestError{http.StatusBadRequest, codeBadChannel, codeMessages[codeBadChannel]}
	case errors.Is(err, handler.ErrHistoryOff):
		status, code = http.StatusNotFound, codeHistoryOff
	case errors.Is(err, handler.ErrEpochChanged):
		status, code = http.StatusConflict, codeEpochChanged
	case errors.Is(err, handler.ErrOffsetTooOld):
		status, code = http.StatusConflict, codeOffsetTooOld
	case errors.Is(err, handler.ErrUnavailable):
		return &requestError{http.StatusServiceUnavailable, codeUnavailable, codeMessages[codeUnavailable]}
	default: // History documents no other: a bug
		return &requestError{http.StatusInternalServerError, codeInternal, "history failed: " + err.Error()}
	}
	return &requestError{status, code, wsproto.ErrorMessage(code)}
}
