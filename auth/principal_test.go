package auth

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, channel string
		want             bool
	}{
		{"*", "news", true},
		{"*", "user:bob", true}, // Match alone; Principal keeps user: channels out
		{"news", "news", true},
		{"news", "news.sport", false},
		{"news", "new", false},
		{"news.*", "news.sport", true},
		{"news.*", "news.sport.eu", true},
		{"news.*", "news.", true},
		{"news.*", "news", false},
		{"news.*", "newsroom", false},
		{"room:42*", "room:42", true},
		{"room:42*", "room:420", true},
		{"room:42*", "room:4", false},
		{"room:42*", "xroom:42", false},
		{"a*b", "axb", false},
		{"a*b", "ab", false},
		{"**", "x", false},
		{"", "", true},
		{"", "x", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.channel, func(t *testing.T) {
			if got := Match(tt.pattern, tt.channel); got != tt.want {
				t.Errorf("got Match(%q, %q) = %v, want %v", tt.pattern, tt.channel, got, tt.want)
			}
		})
	}
}

func TestPrincipalPermissions(t *testing.T) {
	none := &Principal{UserID: "alice"}
	reader := &Principal{UserID: "alice", Subscribe: []string{"news.*", "room:42"}, Publish: []string{"room:42", "chat.*"}}
	admin := &Principal{UserID: "alice", Subscribe: []string{"*", "user:*", "user:bob"}, Publish: []string{"*", "user:alice", "user:*"}}
	tests := []struct {
		name     string
		p        *Principal
		channel  string
		sub, pub bool
	}{
		{name: "own personal channel without patterns", p: none, channel: "user:alice", sub: true},
		{name: "own personal channel, all patterns", p: admin, channel: "user:alice", sub: true},
		{name: "another's personal channel, all patterns", p: admin, channel: "user:bob", sub: false},
		{name: "personal channel of a longer id", p: none, channel: "user:alicex", sub: false},
		{name: "personal channel of a prefix of the id", p: none, channel: "user:alic", sub: false},
		{name: "empty personal id", p: admin, channel: "user:", sub: false},
		{name: "not the personal prefix", p: admin, channel: "users:bob", sub: true, pub: true},
		{name: "nothing without patterns", p: none, channel: "news", sub: false},
		{name: "prefix pattern", p: reader, channel: "news.sport", sub: true},
		{name: "prefix pattern, bare name", p: reader, channel: "news", sub: false},
		{name: "exact on both", p: reader, channel: "room:42", sub: true, pub: true},
		{name: "exact is not prefix", p: reader, channel: "room:420", sub: false, pub: false},
		{name: "publish only", p: reader, channel: "chat.x", pub: true},
		{name: "star allows all", p: admin, channel: "anything", sub: true, pub: true},
		{name: "nil principal", p: nil, channel: "news", sub: false},
		{name: "nil principal, personal", p: nil, channel: "user:", sub: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.CanSubscribe(tt.channel); got != tt.sub {
				t.Errorf("got CanSubscribe(%q) = %v, want %v", tt.channel, got, tt.sub)
			}
			if got := tt.p.CanPublish(tt.channel); got != tt.pub {
				t.Errorf("got CanPublish(%q) = %v, want %v", tt.channel, got, tt.pub)
			}
		})
	}
}
