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

// GET /api/presence?channel=C lists a channel's subscribers on every
// process for a backend, with the API key of POST /api/publish: it is
// handler.Channels.Presence, as the /ws presence request is, without the
// subscribe permission check.

// presenceAnswer is the body of a 200 from GET /api/presence.
type presenceAnswer struct {
	Presence []json.RawMessage `json:"presence"`
	More     bool              `json:"more,omitempty"`
	Clients  int               `json:"clients"`
	Users    int               `json:"users"`
}

func (s *Server) handlePresence(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) || !s.keyed(w, r, "GET /api/presence") {
		return
	}
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadQuery, "query string: "+err.Error())
		return
	}
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		if k != "channel" || len(vals[k]) > 1 {
			writeError(w, http.StatusBadRequest, codeBadQuery, "want one parameter, channel; got "+strconv.Quote(k))
			return
		}
	}
	p, err := s.cfg.Channels.Presence(r.Context(), vals.Get("channel"))
	if err != nil {
		switch {
		case errors.Is(err, handler.ErrBadChannel):
			writeError(w, http.StatusBadRequest, codeBadChannel, codeMessages[codeBadChannel])
		case errors.Is(err, handler.ErrPresenceOff):
			writeError(w, http.StatusNotFound, codePresenceOff, wsproto.ErrorMessage(codePresenceOff))
		case errors.Is(err, handler.ErrUnavailable):
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the other processes could not be asked: "+err.Error())
		default: // Presence documents no other: a bug
			writeError(w, http.StatusInternalServerError, codeInternal, "presence failed: "+err.Error())
		}
		return
	}
	answer := presenceAnswer{Presence: p.Clients, More: p.More, Clients: p.Total, Users: p.Users}
	if answer.Presence == nil {
		answer.Presence = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, answer)
}
