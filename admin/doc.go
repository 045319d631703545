// Package admin owns wsgate's operator port: an HTTP listener, separate
// from the WebSocket port, that publishes to channels on behalf of a
// backend and reads their history back, reports what the process holds,
// answers health checks, and exposes Prometheus metrics. It serves with
// net/http (the WebSocket port has its own reactor; this one sees a few
// requests a second).
//
// # Endpoints
//
//	POST /api/publish   {"channel":"news","data":<JSON>}             → {"delivered":N}
//	                    {"messages":[{"channel":…,"data":…},…]}      → {"results":[{"delivered":N}|{"error":"bad_channel"},…]}
//	GET  /api/history   ?channel=news[&limit=N][&after=OFFSET&epoch=E]
//	                    → {"offset":N,"epoch":"E","publications":[{"channel":"news","offset":N,"data":…},…]}
//	GET  /api/presence  ?channel=room → {"presence":[{"client":"k2j-7","user":"alice","info":…},…],"clients":N,"users":M}
//	GET  /api/channels  {"channels":{"news":2,…}}
//	GET  /api/stats     {"ws":wsconn.Stats,"poller":poller.Stats,"channels":handler.ChannelsStats,"broker":broker.Stats,"admin":Stats}
//	GET  /healthz       200 "ok" while the process serves
//	GET  /readyz        200 "ready", or 503 and the reason: shutting down
//	                    (Drain or Shutdown called), the WebSocket listener
//	                    not started, or a broker configured and not connected
//	GET  /metrics       Prometheus text exposition
//	GET  /debug/pprof/  net/http/pprof, with Config.Pprof (no cmdline)
//
// /api/publish calls handler.Channels.Publish, which pushes to the
// subscribers on this process and hands the message to the broker, if
// any, for the other workers and nodes; "delivered" counts this process's
// subscribers. It needs "Authorization: Bearer <Config.APIKey>" (compared
// in constant time) and "Content-Type: application/json"; a body is at most
// MaxBodyBytes and a batch at most MaxBatch messages. Failures answer a JSON
// body {"error":code,"message":text}:
//
//	status  code                    when
//	400     bad_json                body not one JSON object of the shape above
//	                                (unknown fields and trailing data included)
//	400     bad_channel             channel empty, too long, or a byte outside
//	                                [A-Za-z0-9_.:@/-] (in a batch: per message)
//	400     bad_data                "data" missing (in a batch: per message)
//	400     bad_batch               "messages" empty, over MaxBatch, or given
//	                                with "channel" or "data"
//	401     unauthorized            no or wrong key (with WWW-Authenticate)
//	403     publishing_disabled     Config.APIKey is empty
//	405     method_not_allowed      not POST (with Allow)
//	413     body_too_large          body over MaxBodyBytes
//	415     unsupported_media_type  Content-Type not application/json
//
// With history on (handler.ChannelOptions.HistorySize), a publish's answer
// also has the publication's "offset" and "epoch", as has each result of
// a batch.
//
// /api/presence calls handler.Channels.Presence: the channel's
// subscribers on every process (at most ChannelsConfig.MaxPresence
// listed, then "more":true), their count and distinct users, with the
// key of /api/publish. 400 bad_query for a parameter other than one
// channel, 400 bad_channel, 404 presence_off, 503 unavailable when the
// other processes could not be asked.
//
// /api/history calls handler.Channels.History: the channel's position
// (the offset and epoch of its last publication; 0 and "" for a channel
// never published to) and its kept publications, oldest first, as the
// pushes its subscribers got: the last ones, or with after and epoch those
// that follow that position. It answers at most limit of them (0, the
// default, and anything larger mean ChannelsConfig.MaxHistoryLimit) and
// no more than ChannelsConfig.MaxReplayBytes framed, but always one if
// there is one; ask again after the last offset for more. It needs the
// key of /api/publish, with the same 401 and 403 answers (its 403 also
// says publishing_disabled), but not a subscriber's permission to the
// channel; it answers 405 to methods other than GET and HEAD. Its other
// failures, in the same JSON body:
//
//	status  code            when
//	400     bad_query       a parameter unknown, repeated or malformed: limit
//	                        not an integer of 0 or more, after not an
//	                        unsigned 64-bit integer, after without epoch or
//	                        epoch without after
//	400     bad_channel     as for /api/publish
//	404     history_off     the channel keeps no history (none does
//	                        with a broker)
//	409     epoch_changed   epoch is not the channel's: its history was lost
//	                        since that position (reload)
//	409     offset_too_old  publications after that offset were evicted
//	                        (reload)
//	500     internal_error  an error History does not document: a bug
//
// history_off, epoch_changed and offset_too_old are the /ws protocol's
// codes for the history request.
//
// The other endpoints need no key: the listener is meant for loopback or a
// private network (Config.Addr defaults to 127.0.0.1:8081). They answer 405
// to methods other than GET and HEAD.
//
// # Metrics
//
// Nothing here adds work to the paths of messages or connections: the
// collector reads the counters that wsconn.Server, poller.Poller,
// handler.Channels and the broker already keep, calling each Stats method
// once per scrape (the Server's own Stats, refused API keys, are counted
// here). Every series is named wsgate_…; the Go runtime's go_…
// and the process's process_… series (descriptors, memory, CPU) come
// alongside. The list is in metrics.go.
//
// Not exported: the latency histograms for handshakes and for delivery
// (publish to the socket). They need a clock read at the source, in
// wsconn's handshake and in every queued push, and a histogram update on
// those paths; neither is counted there today. They are left for when they
// can be measured cheaply (a sampled clock, or a per-worker histogram).
//
// # Logging
//
// The package logs only through Config.Logger (nothing when it is nil):
// refused API keys (publish and history alike, with the path) at Warn, at
// most one record per Config.WarnInterval with "suppressed", the number
// left out since the last (anyone who reaches the port can send bad keys
// as fast as it answers, and every one is counted in
// wsgate_api_unauthorized_total); accepted publishes at Debug; net/http's
// own errors at Warn.
package admin
