package broker_test

import (
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// Two wsgate processes, here two brokers in one process, joined by an
// embedded NATS server: a publish on one reaches the other's subscribers.
// In wsgate, deliver is handler.Channels.DeliverRemote and Channels calls
// Interest and Publish; here the example calls them itself.
func Example() {
	natsd, err := broker.StartEmbedded("127.0.0.1", 0) // a free port
	if err != nil {
		log.Fatal(err)
	}
	defer natsd.Shutdown()

	// The process with a subscriber on "prices": deliver hands what other
	// processes publish to its local subscribers (it reached one).
	got := make(chan string, 1)
	sub, err := broker.NewNATS(broker.Config{URLs: []string{natsd.URL()}},
		func(channel string, push []byte) int {
			select {
			case got <- channel + " " + string(push):
			default: // a repeat of the publish below: already seen
			}
			return 1
		})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = sub.Close() }()
	sub.Interest("prices", true) // its first subscriber on the channel

	// The process that publishes, with no subscriber of its own.
	pub, err := broker.NewNATS(broker.Config{URLs: []string{natsd.URL()}},
		func(string, []byte) int { return 0 })
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = pub.Close() }()

	// NATS registers the subscription in the background, and a publish
	// before that reaches no one (nothing is buffered): publish until one
	// arrives.
	var msg string
	for msg == "" {
		err := pub.Publish("prices", []byte(`{"sym":"ABC","price":12.5}`))
		if err != nil && !errors.Is(err, broker.ErrDisconnected) {
			log.Fatal(err)
		}
		select {
		case msg = <-got:
		case <-time.After(10 * time.Millisecond):
		}
	}
	fmt.Println("delivered:", msg)
	fmt.Println("subscribed subjects:", sub.Stats().Subjects, pub.Stats().Subjects)
	// Output:
	// delivered: prices {"sym":"ABC","price":12.5}
	// subscribed subjects: 1 0
}
