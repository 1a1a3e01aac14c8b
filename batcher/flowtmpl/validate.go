package flowtmpl

// sampleEvent is the event a body template is tried on when it is saved:
// a Placed Order with the properties Klaviyo's e-commerce integrations
// send, and a profile with the usual attributes and one custom property.
const sampleEvent = `{"data":{"type":"event","id":"4vRpBT5cNe8","attributes":{
 "timestamp":1700503941,"datetime":"2023-11-20 18:12:21+00:00","uuid":"58edf080-87d0-11ee-8001-895ec29a6280",
 "event_properties":{"$value":59.5,"value":59.5,"OrderId":"1001","$event_id":"1001","Quantity":2,
  "ItemNames":["Shirt","Socks"],"Categories":["Apparel"],"DiscountCode":"","DiscountValue":0,
  "Items":[{"ProductID":"p1","SKU":"SH-1","ProductName":"Shirt","Quantity":1,"ItemPrice":49.5,"RowTotal":49.5,"URL":"https://shop.example/p1","ImageURL":"https://shop.example/p1.png"},
           {"ProductID":"p2","SKU":"SO-1","ProductName":"Socks","Quantity":1,"ItemPrice":10,"RowTotal":10,"URL":"https://shop.example/p2","ImageURL":"https://shop.example/p2.png"}],
  "BillingAddress":{"FirstName":"Ada","LastName":"Lovelace","City":"London","Country":"GB","Zip":"N1 9GU"},
  "ShippingAddress":{"FirstName":"Ada","LastName":"Lovelace","City":"London","Country":"GB","Zip":"N1 9GU"}}},
 "relationships":{"metric":{"data":{"type":"metric","id":"Rk7x2Q"}},"profile":{"data":{"type":"profile","id":"01HSAMPLEPROFILE"}}}},
 "included":[{"type":"profile","id":"01HSAMPLEPROFILE","attributes":{"email":"ada@example.com","phone_number":"+15005550006",
  "external_id":"c-42","first_name":"Ada","last_name":"Lovelace","organization":"Analytical","title":"Engineer",
  "location":{"address1":"1 Main St","city":"London","country":"GB","region":"","zip":"N1 9GU","timezone":"Europe/London"},
  "properties":{"Loyalty Points":120,"VIP":true}}}]}`

// Validate parses src and renders it with a sample Placed Order event
// and profile; the output must be JSON. It returns an *Error naming the
// template line for syntax errors.
func Validate(src string, lim Limits, org Organization) error {
	_, err := RenderSample(src, lim, org)
	return err
}

// RenderSample is Validate that returns the output: src rendered with
// the sample event and profile under lim (a template preview).
func RenderSample(src string, lim Limits, org Organization) ([]byte, error) {
	t, err := Parse(src, lim)
	if err != nil {
		return nil, err
	}
	ev, err := ParseEvent([]byte(sampleEvent))
	if err != nil {
		return nil, err // the sample is a constant: a programming error
	}
	return t.RenderJSON(ev.Context(org))
}

// SampleEvent is the sample event Validate and RenderSample render
// with, as the events API returns it (the profile included).
func SampleEvent() string { return sampleEvent }
