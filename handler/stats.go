package handler

import "github.com/wsgate/wsgate/internal/wsproto"

// ChannelsStats is a snapshot of the counters of a Channels hub.
type ChannelsStats struct {
	// Published counts accepted publishes, from clients and from Publish.
	Published uint64
	// Delivered counts pushes queued to a subscriber.
	Delivered uint64
	// Dropped counts pushes a subscriber refused because it was closing
	// or its outbound queue was full.
	Dropped uint64
	// Rejected counts client requests answered with an error: the sum of
	// RejectedByCode.
	Rejected uint64
	// RejectedByCode counts client requests answered with an error, by
	// protocol code (protocol.go): every code of ErrorCodes is a key, zeros
	// included. too_many_subscriptions counts the MaxSubscriptions limit,
	// bad_channel the MaxChannelLen limit and bad names. The map is the
	// caller's.
	RejectedByCode map[string]uint64
	// Subscriptions is the number of (connection, channel) pairs now.
	Subscriptions int64
	// Channels is the number of channels now.
	Channels int64
	// Remote counts publishes received from other processes through the
	// broker.
	Remote uint64
	// BrokerFailures counts publishes the broker could not send to other
	// processes (it was disconnected); local delivery still happened.
	BrokerFailures uint64
	// Recoveries counts subscribes with recover that replayed everything
	// the client missed; Unrecovered those answered recovered:false.
	Recoveries, Unrecovered uint64
	// Replayed counts publications queued by recoveries.
	Replayed uint64
	// HistoryChannels is the number of channels with a history now,
	// HistoryEntries the publications they hold and HistoryBytes their
	// framed size.
	HistoryChannels, HistoryEntries, HistoryBytes int64
	// With a StoreBroker: StoreFailures counts publishes the store did not
	// take (answered unavailable); StoreGaps the times this process
	// found it had missed stored publications, fetched and delivered
	// them; StoreGapsLost the times that fetch failed; StoreJobs the
	// subscribes and history requests running or waiting for the store
	// now.
	StoreFailures, StoreGaps, StoreGapsLost uint64
	// HistoryFull counts publishes and subscribes served without history
	// because MaxHistoryChannels channels had one already.
	HistoryFull uint64
	StoreJobs   int
}

// Stats returns the hub's counters.
func (h *Channels) Stats() ChannelsStats {
	s := ChannelsStats{
		Published:      h.published.Load(),
		Delivered:      h.delivered.Load(),
		Dropped:        h.dropped.Load(),
		RejectedByCode: make(map[string]uint64, wsproto.NumCodes),
		Subscriptions:  h.hub.subscriptions.Load(),
		Channels:       h.hub.channels.Load(),
		Remote:         h.remote.Load(),
		BrokerFailures: h.brokerFailed.Load(),

		Recoveries:      h.recoveries.Load(),
		Unrecovered:     h.unrecovered.Load(),
		Replayed:        h.replayed.Load(),
		HistoryChannels: h.history.streams.Load(),
		HistoryEntries:  h.history.entries.Load(),
		HistoryBytes:    h.history.bytes.Load(),

		StoreFailures: h.storeFailed.Load(),
		HistoryFull:   h.historyFull.Load(),
		StoreGaps:     h.gaps.Load(),
		StoreGapsLost: h.gapsLost.Load(),
		StoreJobs:     h.jobs.waiting(),
	}
	for i := range h.rejected {
		n := h.rejected[i].Load()
		s.RejectedByCode[wsproto.CodeAt(i)] = n
		s.Rejected += n // summed here, so the total always matches the codes
	}
	return s
}
