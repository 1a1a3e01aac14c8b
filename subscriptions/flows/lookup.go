package flows

import "context"

// Lookup returns flow id of whichever account holds it: for the
// operator's console, which sees every account (Get checks the account).
func (s *Store) Lookup(ctx context.Context, id string) (Flow, error) {
	return s.load(ctx, s.rdb, id)
}
