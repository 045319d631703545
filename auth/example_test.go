package auth_test

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// A Verifier checks tokens at the handshake (Authorize) and on refresh
// (RefreshHook); the principal it returns decides the channels.
func ExampleVerifier() {
	secret := []byte("an example secret of at least 32 bytes")
	v, err := auth.New(auth.Config{Secret: secret})
	if err != nil {
		panic(err)
	}
	channels, err := handler.NewChannels(handler.ChannelsConfig{})
	if err != nil {
		panic(err)
	}
	channels.SetRefresh(v.RefreshHook)
	_ = wsconn.Config{Routes: map[string]wsconn.Handler{"/ws": channels}, Authorize: v.Authorize}

	// What the application's login service hands its client:
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":       "alice",
		"exp":       time.Now().Add(time.Hour).Unix(),
		"subscribe": []string{"news.*"},
		"publish":   []string{"room:42"},
	}).SignedString(secret)
	if err != nil {
		panic(err)
	}
	p, _, err := v.Verify(token)
	if err != nil {
		panic(err)
	}
	fmt.Println(p.UserID, v.Algorithms())
	fmt.Println(p.CanSubscribe("news.eu"), p.CanSubscribe("user:alice"), p.CanSubscribe("user:bob"))
	fmt.Println(p.CanPublish("room:42"), p.CanPublish("news.eu"), p.CanPublish("user:alice"))
	// Output:
	// alice [HS256]
	// true true false
	// true false false
}
