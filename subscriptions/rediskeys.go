package subscriptions

// The Redis key layout. Every key of one webhook shares the hash tag
// {<id>}, every account index key the hash tag {<account>}:
//
//	wh:{<id>}                  HASH   the record and its delivery state
//	wh:{<id>}:slots            ZSET   semaphore leases: holder -> expiry (ms)
//	acct:{<a>}:webhooks        ZSET   webhook ids in creation order
//	acct:{<a>}:topic:<topic>   SET    ids of the account's webhooks subscribed to topic
//	acct:{<a>}:topics          SET    topics seen on the stream for the account
//	wh:all                     SET    every webhook id
//	wh:erroring                ZSET   id -> error_since (ms), for the disable sweeper
//	wh:rev                     STRING counter bumped on create/update/delete/enable/disable
//	wh:epoch                   STRING the registry's identity: a random id created once per dataset
//	wh:changes                 STREAM one entry {id, kind} per registry change (the change feed)
//
// The registry write scripts (create, update, delete, and the disable
// transition of RecordFailure and DisableExpired) bump wh:rev, append to
// wh:changes and create wh:epoch if it is missing, all inside the script,
// so the three never disagree with the records.
const (
	keyAll      = "wh:all"
	keyErroring = "wh:erroring"
	keyRev      = "wh:rev"
	keyEpoch    = "wh:epoch"
	keyChanges  = "wh:changes"
)

func keyWebhook(id string) string          { return "wh:{" + id + "}" }
func keySlots(id string) string            { return "wh:{" + id + "}:slots" }
func keyAccount(account string) string     { return "acct:{" + account + "}:webhooks" }
func keyTopicPrefix(account string) string { return "acct:{" + account + "}:topic:" }
func keyTopics(account string) string      { return "acct:{" + account + "}:topics" }

// registryKeys are the registry-wide keys every registry write script
// takes last, in the order registry_keys (lua.go) reads them.
var registryKeys = []string{keyRev, keyEpoch, keyChanges}
