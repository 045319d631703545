package auth

import (
	"strings"

	"github.com/wsgate/wsgate/handler"
)

// PersonalPrefix begins the personal channel of every user:
// "user:" + UserID.
const PersonalPrefix = "user:"

// Principal is who a connection acts for, as its verified token says. A
// Verifier makes one per accepted token; it is kept with the connection
// (wsconn.Conn.Principal) and never changed afterwards, only replaced, so
// it is safe to read from any goroutine.
//
// Its permissions are channel patterns: an exact channel name, or a name
// ending in '*', which matches any channel that begins with what precedes
// the '*' ("news.*" matches "news.sport" and "news.", not "news";
// "room:42*" matches "room:42" and "room:420"); "*" alone matches every
// channel. A '*' anywhere else is an ordinary character, which no channel
// name contains, so such a pattern matches nothing.
//
// Channels that begin with PersonalPrefix are personal, and patterns never
// grant them: a user may always subscribe to its own, "user:" + UserID,
// and to no other, and may not publish to any, its own included. What
// arrives there comes from the application's backend (through Publish on
// the server), never from another client.
//
// A Principal is held by every open connection, so it keeps only what the
// checks need (64 bytes and the strings), not the token's claims.
type Principal struct {
	// UserID is the token's sub claim; never empty.
	UserID string
	// Subscribe holds the patterns of the channels the user may subscribe
	// to (the "subscribe" claim, or Config.SubscribeClaim).
	Subscribe []string
	// Publish holds the patterns of the channels the user may publish to
	// (the "publish" claim, or Config.PublishClaim).
	Publish []string
}

// A *Principal restricts the channels of /ws.
var _ handler.Permissions = (*Principal)(nil)

// User returns the user, for presence (handler.User).
func (p *Principal) User() string { return p.UserID }

// A *Principal names its user in presence.
var _ handler.User = (*Principal)(nil)

// CanSubscribe reports whether the user may subscribe to channel: its own
// personal channel, or a channel outside PersonalPrefix that one of the
// Subscribe patterns matches. A nil Principal may do nothing.
func (p *Principal) CanSubscribe(channel string) bool {
	if p == nil {
		return false
	}
	if id, personal := strings.CutPrefix(channel, PersonalPrefix); personal {
		return id == p.UserID
	}
	return matchAny(p.Subscribe, channel)
}

// CanPublish reports whether the user may publish to channel: a channel
// outside PersonalPrefix that one of the Publish patterns matches. A nil
// Principal may do nothing.
func (p *Principal) CanPublish(channel string) bool {
	if p == nil || strings.HasPrefix(channel, PersonalPrefix) {
		return false
	}
	return matchAny(p.Publish, channel)
}

// Match reports whether pattern, in the syntax Principal describes,
// matches channel.
func Match(pattern, channel string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(channel, prefix)
	}
	return pattern == channel
}

// matchAny reports whether one of patterns matches channel.
func matchAny(patterns []string, channel string) bool {
	for _, pat := range patterns {
		if Match(pat, channel) {
			return true
		}
	}
	return false
}
