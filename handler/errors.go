package handler

import "errors"

// Errors returned by Channels. Each also has a code in the /ws protocol
// (see protocol.go), so a client sees the same condition an API caller does.
var (
	// ErrBadChannel is returned by Channels.Publish for a channel name that
	// is empty, longer than ChannelsConfig.MaxChannelLen, or has a byte
	// outside [A-Za-z0-9_.:@/-]. Protocol code: bad_channel.
	ErrBadChannel = errors.New("handler: bad channel name")
	// ErrBadData is returned by Channels.Publish for data that is missing
	// or not one valid JSON value. Protocol code: bad_json.
	ErrBadData = errors.New("handler: publish data is not valid JSON")
	// ErrTooManySubscriptions is the answer to a subscribe that would take
	// a connection past ChannelsConfig.MaxSubscriptions. Protocol code:
	// too_many_subscriptions.
	ErrTooManySubscriptions = errors.New("handler: too many subscriptions")
	// ErrNotSubscribed is the answer to an unsubscribe from a channel the
	// connection is not subscribed to. Protocol code: not_subscribed.
	ErrNotSubscribed = errors.New("handler: not subscribed")
	// ErrHistoryOff is returned by Channels.History for a channel whose
	// options keep no history. Protocol code: history_off.
	ErrHistoryOff = errors.New("handler: channel keeps no history")
	// ErrEpochChanged is returned by Channels.History for a position of
	// another epoch: the history it was in is gone. Protocol code:
	// epoch_changed.
	ErrEpochChanged = errors.New("handler: history epoch changed")
	// ErrOffsetTooOld is returned by Channels.History for a position
	// whose next publications were evicted (size or TTL). Protocol code:
	// offset_too_old.
	ErrOffsetTooOld = errors.New("handler: offset no longer in history")
	// ErrUnavailable is wrapped by Channels.Publish and Channels.History
	// when the StoreBroker keeping the channel's history did not answer: a
	// publish was not stored, and so not delivered. Protocol code:
	// unavailable.
	ErrUnavailable = errors.New("handler: history store unavailable")
	// ErrBusy answers a subscribe or history request that would wait for
	// the StoreBroker behind MaxStoreQueue others. Protocol code: busy.
	ErrBusy = errors.New("handler: too many requests waiting for the history store")
	// ErrPresenceOff answers a presence request on a channel whose
	// options have no presence. Protocol code: presence_off.
	ErrPresenceOff = errors.New("handler: channel has no presence")
	// ErrInvalidConfig is wrapped by NewChannels when a ChannelsConfig
	// field is out of range; the message names the field.
	ErrInvalidConfig = errors.New("handler: invalid config")
)
