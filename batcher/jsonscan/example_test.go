package jsonscan_test

import (
	"fmt"

	"github.com/webhookd/webhookd/batcher/jsonscan"
)

// This reads meta.klaviyo_webhook_id from a delivery body as the test
// sink does, skipping every other value, payloads included, with the
// nesting limit counted from the body's top.
func Example() {
	body := []byte(`{"data":[{"external_id":"1","topic":"t","payload":{"a":[1,2.5]}}],"meta":{"klaviyo_webhook_id":"wh\u0031"}}`)
	webhookID, err := metaWebhookID(body)
	fmt.Printf("%s %v\n", webhookID, err)
	_, err = metaWebhookID([]byte(`{"data":[1e400],"meta":{}}`))
	fmt.Println(err)
	// Output:
	// wh1 <nil>
	// byte 9: jsonscan: number out of range of a double
}

func metaWebhookID(b []byte) (id []byte, err error) {
	fail := func(i int, err error) ([]byte, error) { return nil, fmt.Errorf("byte %d: %w", i, err) }
	i := jsonscan.Space(b, 0)
	if i >= len(b) || b[i] != '{' {
		return fail(i, jsonscan.ErrSyntax)
	}
	i = jsonscan.Space(b, i+1)
	for i < len(b) && b[i] != '}' {
		nameEnd, v, err := jsonscan.Member(b, i)
		if err != nil {
			return fail(v, err)
		}
		if string(jsonscan.Unquote(b[i:nameEnd])) == "meta" && v < len(b) && b[v] == '{' {
			if i, id, err = metaMember(b, v); err != nil {
				return fail(i, err)
			}
		} else if i, err = jsonscan.Skip(b, v, 1); err != nil { // inside the body object
			return fail(i, err)
		}
		if i = jsonscan.Space(b, i); i < len(b) && b[i] == ',' {
			i = jsonscan.Space(b, i+1)
		}
	}
	return id, nil // a real scanner also checks the closing brace and what follows
}

// metaMember scans the meta object at b[i] for klaviyo_webhook_id.
func metaMember(b []byte, i int) (end int, id []byte, err error) {
	for i = jsonscan.Space(b, i+1); i < len(b) && b[i] != '}'; {
		nameEnd, v, err := jsonscan.Member(b, i)
		if err != nil {
			return v, nil, err
		}
		if string(jsonscan.Unquote(b[i:nameEnd])) == "klaviyo_webhook_id" {
			var end int
			if end, _, err = jsonscan.String(b, v); err != nil {
				return end, nil, err
			}
			id, i = jsonscan.Unquote(b[v:end]), end
		} else if i, err = jsonscan.Skip(b, v, 2); err != nil {
			return i, nil, err
		}
		if i = jsonscan.Space(b, i); i < len(b) && b[i] == ',' {
			i = jsonscan.Space(b, i+1)
		}
	}
	return i + 1, id, nil
}
