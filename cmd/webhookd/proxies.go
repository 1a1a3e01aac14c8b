package main

import (
	"github.com/webhookd/webhookd/api/clientaddr"
)

// proxiesFlag is --trusted-proxies: a comma list of CIDRs and addresses,
// parsed when set so that a bad entry stops start-up naming it; setting
// it again replaces the list.
type proxiesFlag clientaddr.Proxies

func (p *proxiesFlag) String() string { return clientaddr.Proxies(*p).String() }

func (p *proxiesFlag) Set(s string) error {
	parsed, err := clientaddr.Parse(splitComma(s))
	if err != nil {
		return err
	}
	*p = proxiesFlag(parsed)
	return nil
}
