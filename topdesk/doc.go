// Package topdesk is a typed client for the part of TOPdesk's REST API that
// alertdesk uses: creating, updating, reading and finding incidents, and the
// searchlists, operator groups, operators and persons that an incident refers
// to.
//
// A Client authenticates with HTTP Basic auth (an operator login name and an
// application password), sends and receives JSON, and turns every non-2xx
// answer into an *APIError. The helpers IsRetryable, IsAuth, IsNotFound,
// IsRejected and IsOutcomeUnknown classify any error the client returns, so
// that callers never need to inspect error text.
//
// A Resolver turns the names a mapping uses ("Infrastructure", "Operations")
// into TOPdesk ids once and caches them.
package topdesk
