package provisioning

// Wire types of the Webex for Wholesale Subscribers API, as described by Cisco's
// OpenAPI description (paths under /v1/wholesale/subscribers). The simulator in
// webexsim serves the same types.

import (
	"bytes"

	"github.com/segmentio/encoding/json"
)

// The API paths, relative to the base URL (https://webexapis.com/v1).
const (
	PathSubscribers = "/wholesale/subscribers"
	PathValidate    = "/wholesale/subscribers/validate"
	PathAccessToken = "/access_token"
	// PathConsentMove is below /subscribers, not /wholesale/subscribers, in
	// Cisco's description: /subscribers/{subscriberId}/emails/consentMove.
	PathConsentMove = "/subscribers/{id}/emails/consentMove"
)

// Subscriber statuses reported by the API.
const (
	SubscriberProvisioned            = "provisioned"
	SubscriberError                  = "error"
	SubscriberProvisioning           = "provisioning"
	SubscriberUpdating               = "updating"
	SubscriberPendingUserMigration   = "pending_user_migration"
	SubscriberPendingEmailValidation = "pending_email_validation"
	SubscriberPendingEmailInput      = "pending_email_input"
	SubscriberPendingEmailVerified   = "pending_email_verified"
)

// Known error codes.
const (
	// CodeEmailInUse answers a provision for an email already associated with a user.
	CodeEmailInUse = 10022
	// CodeCallingMaintenance means Webex Calling services are in maintenance: retry later.
	CodeCallingMaintenance = 2560
	// PrecheckSuccessCode is the infoCode of a successful precheck.
	PrecheckSuccessCode = 100
)

// ProvisioningParameters is the provisioningParameters object of a request.
type ProvisioningParameters struct {
	FirstName          string `json:"firstName,omitempty"`
	LastName           string `json:"lastName,omitempty"`
	PrimaryPhoneNumber string `json:"primaryPhoneNumber,omitempty"`
	Extension          string `json:"extension,omitempty"`
	LocationID         string `json:"locationId,omitempty"`
}

// CustomerInfo is the customerInfo object of a subscriber precheck (the
// primary email only) and of a customer's create and precheck (all three).
type CustomerInfo struct {
	Name         string `json:"name,omitempty"`
	PrimaryEmail string `json:"primaryEmail"`
	Language     string `json:"language,omitempty"`
}

// PrecheckRequest is the body of POST /wholesale/subscribers/validate.
type PrecheckRequest struct {
	ProvisioningID         string                  `json:"provisioningId,omitempty"`
	CustomerID             string                  `json:"customerId,omitempty"`
	Email                  string                  `json:"email"`
	Package                string                  `json:"package,omitempty"`
	Packages               []string                `json:"packages,omitempty"`
	ProvisioningParameters *ProvisioningParameters `json:"provisioningParameters,omitempty"`
	CustomerInfo           *CustomerInfo           `json:"customerInfo,omitempty"`
}

// PrecheckInfo is one info item of a precheck answer.
type PrecheckInfo struct {
	InfoCode    int    `json:"infoCode"`
	Description string `json:"description,omitempty"`
}

// PrecheckResponse is the 200 answer of the precheck. Its info member is documented
// both as an object and as an array; Info accepts either.
type PrecheckResponse struct {
	Message string        `json:"message"`
	Info    PrecheckInfos `json:"info"`
}

// PrecheckInfos decodes the precheck's info member whether it is an object or an array.
type PrecheckInfos []PrecheckInfo

// UnmarshalJSON accepts an object, an array of objects, or null.
func (p *PrecheckInfos) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*p = nil
		return nil
	case len(b) > 0 && b[0] == '{':
		var one PrecheckInfo
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*p = PrecheckInfos{one}
		return nil
	default:
		var many []PrecheckInfo
		if err := json.Unmarshal(b, &many); err != nil {
			return err
		}
		*p = many
		return nil
	}
}

// ProvisionRequest is the body of POST /wholesale/subscribers. Exactly one of
// Package and Packages is sent; this client sends Packages.
type ProvisionRequest struct {
	CustomerID             string                 `json:"customerId"`
	Email                  string                 `json:"email"`
	Package                string                 `json:"package,omitempty"`
	Packages               []string               `json:"packages,omitempty"`
	ProvisioningParameters ProvisioningParameters `json:"provisioningParameters"`
}

// UpdateRequest is the body of PUT /wholesale/subscribers/{id}. Exactly one
// of Package and Packages is sent; this client sends Packages. The
// provisioning parameters go only with a move from webex_meetings to a
// calling package, as Cisco's description says, and never hold names.
type UpdateRequest struct {
	Package                string                  `json:"package,omitempty"`
	Packages               []string                `json:"packages,omitempty"`
	ProvisioningParameters *ProvisioningParameters `json:"provisioningParameters,omitempty"`
}

// Subscriber is the subscriber resource.
type Subscriber struct {
	ID                 string      `json:"id"`
	PersonID           string      `json:"personId,omitempty"`
	Email              string      `json:"email"`
	CustomerID         string      `json:"customerId"`
	ExternalCustomerID string      `json:"externalCustomerId,omitempty"`
	Package            string      `json:"package,omitempty"`
	Packages           []string    `json:"packages,omitempty"`
	Status             string      `json:"status"`
	Errors             []ErrorItem `json:"errors,omitempty"`
	Created            string      `json:"created,omitempty"`
	LastStatusChange   string      `json:"lastStatusChange,omitempty"`
}

// SubscriberList is the answer of GET /wholesale/subscribers.
type SubscriberList struct {
	Items []Subscriber `json:"items"`
}

// ErrorItem is one entry of an error body's errors array.
type ErrorItem struct {
	ErrorCode   int    `json:"errorCode,omitempty"`
	Description string `json:"description,omitempty"`
}

// ErrorBody is the body of an error response.
type ErrorBody struct {
	Message    string      `json:"message"`
	Errors     []ErrorItem `json:"errors,omitempty"`
	TrackingID string      `json:"trackingId,omitempty"`
}

// TokenResponse is the answer of POST /access_token.
type TokenResponse struct {
	AccessToken           string `json:"access_token"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token,omitempty"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in,omitempty"`
	TokenType             string `json:"token_type,omitempty"`
	Scope                 string `json:"scope,omitempty"`
}
