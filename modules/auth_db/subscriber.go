package auth_db

import (
	"context"

	"github.com/sipedge/sipedge/modules/auth"
	"github.com/sipedge/sipedge/runtime/store"
)

// Subscriber is one row of the subscriber table.
type Subscriber struct {
	Username, Domain, Password, Email string
	HA1, HA1SHA256, HA1SHA512T256     string
}

// NewSubscriber fills the three hash columns for user@domain with password,
// the realm being the domain (www_authorize with an empty realm). Password
// stays empty unless keepPlain, for calculate_ha1 setups.
func NewSubscriber(user, domain, password string, keepPlain bool) Subscriber {
	s := Subscriber{
		Username:      user,
		Domain:        domain,
		HA1:           auth.HA1(auth.AlgMD5, user, domain, password),
		HA1SHA256:     auth.HA1(auth.AlgSHA256, user, domain, password),
		HA1SHA512T256: auth.HA1(auth.AlgSHA512_256, user, domain, password),
	}
	if keepPlain {
		s.Password = password
	}
	return s
}

// AddSubscriber inserts or replaces a subscriber row.
func AddSubscriber(ctx context.Context, db *store.DB, s Subscriber) error {
	_, err := db.Exec(ctx, `INSERT INTO subscriber (username, domain, password, email_address, ha1, ha1_sha256, ha1_sha512t256)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (username, domain) DO UPDATE SET password = excluded.password, email_address = excluded.email_address,
  ha1 = excluded.ha1, ha1_sha256 = excluded.ha1_sha256, ha1_sha512t256 = excluded.ha1_sha512t256`,
		s.Username, s.Domain, s.Password, s.Email, s.HA1, s.HA1SHA256, s.HA1SHA512T256)
	return err
}
