package schemas

import "time"

// CustomerOrder is a customer-order event (schema customer-order, version
// 1), as published by the billing system to the customer-orders topic,
// keyed by ExternalID.
type CustomerOrder struct {
	// SchemaVersion is the version of the customer-order schema the event follows (1).
	SchemaVersion int `json:"schemaVersion"`
	// OrderID identifies the order; it is the idempotency key of the whole flow.
	OrderID string `json:"orderId"`
	// Action is what the order asks for.
	Action Action `json:"action"`
	// OccurredAt is when the billing system created the order.
	OccurredAt time.Time `json:"occurredAt"`
	// ExternalID is the billing system's id of the customer, kept by Webex.
	ExternalID string `json:"externalId"`
	// OrgID names an existing Webex organisation to make a wholesale customer.
	OrgID string `json:"orgId,omitempty"`
	// ProvisioningID names the customer template.
	ProvisioningID string `json:"provisioningId,omitempty"`
	// Packages is the complete list of the customer's packages.
	Packages []string `json:"packages,omitempty"`
	// Address is the customer's billing address.
	Address *Address `json:"address,omitempty"`
	// CustomerInfo describes a new customer.
	CustomerInfo *NewCustomerInfo `json:"customerInfo,omitempty"`
	// ProvisioningParameters are passed through to Webex.
	ProvisioningParameters *CustomerProvisioningParameters `json:"provisioningParameters,omitempty"`
}

// Address is a postal address.
type Address struct {
	AddressLine1    string `json:"addressLine1"`
	AddressLine2    string `json:"addressLine2,omitempty"`
	City            string `json:"city"`
	StateOrProvince string `json:"stateOrProvince,omitempty"`
	ZipOrPostalCode string `json:"zipOrPostalCode,omitempty"`
	Country         string `json:"country"`
}

// NewCustomerInfo describes a customer that Webex does not have yet.
type NewCustomerInfo struct {
	Name string `json:"name"`
	// PrimaryEmail is the customer's primary email address (personal data).
	PrimaryEmail string `json:"primaryEmail"`
	Language     string `json:"language,omitempty"`
}

// CustomerProvisioningParameters are a customer's settings for Webex.
type CustomerProvisioningParameters struct {
	Calling  *CallingParameters  `json:"calling,omitempty"`
	Meetings *MeetingsParameters `json:"meetings,omitempty"`
	Packages *PackageLimits      `json:"packages,omitempty"`
}

// CallingParameters are mandatory when a calling package is provisioned.
type CallingParameters struct {
	Location CallingLocation `json:"location"`
}

// MeetingsParameters are the meetings package's settings.
type MeetingsParameters struct {
	Timezone string `json:"timezone,omitempty"`
}

// PackageLimits cap how many of each package the customer may assign.
type PackageLimits struct {
	Limits map[string]int `json:"limits,omitempty"`
}

// CallingLocation is a customer's main calling location.
type CallingLocation struct {
	Name                        string  `json:"name"`
	Address                     Address `json:"address"`
	Timezone                    string  `json:"timezone"`
	Language                    string  `json:"language"`
	EmergencyLocationIdentifier string  `json:"emergencyLocationIdentifier,omitempty"`
}

// The statuses of a customer outcome that a subscriber outcome does not have.
const (
	// StatusProvisionedWithErrors: the customer exists, but some packages failed.
	StatusProvisionedWithErrors OutcomeStatus = "provisioned_with_errors"
	// StatusPendingReview: Webex holds the customer for a Denied Party List check.
	StatusPendingReview OutcomeStatus = "pending_review"
)

// CustomerOutcome is a customer-outcome event (schema customer-outcome,
// version 1), published once per identifiable customer order.
type CustomerOutcome struct {
	SchemaVersion int           `json:"schemaVersion"`
	EventID       string        `json:"eventId"`
	OrderID       string        `json:"orderId"`
	Action        Action        `json:"action,omitempty"`
	Status        OutcomeStatus `json:"status"`
	ExternalID    string        `json:"externalId,omitempty"`
	Customer      *CustomerRef  `json:"customer,omitempty"`
	Precheck      *Precheck     `json:"precheck,omitempty"`
	// Changed says, for an updated outcome, whether this order changed the packages.
	Changed *bool `json:"changed,omitempty"`
	// AlreadyAbsent says, for a removed outcome, that the customer was gone before.
	AlreadyAbsent   bool       `json:"alreadyAbsent,omitempty"`
	Failure         *Failure   `json:"failure,omitempty"`
	OrderOccurredAt *time.Time `json:"orderOccurredAt,omitempty"`
	ProcessedAt     time.Time  `json:"processedAt"`
	Attempts        int        `json:"attempts"`
}

// CustomerRef is what a customer outcome says about the Webex customer.
type CustomerRef struct {
	ID               string          `json:"id"`
	OrgID            string          `json:"orgId,omitempty"`
	WebexStatus      string          `json:"webexStatus"`
	Packages         []string        `json:"packages,omitempty"`
	PreviousPackages []string        `json:"previousPackages,omitempty"`
	FoundByLookup    bool            `json:"foundByLookup,omitempty"`
	PackageDetails   []PackageDetail `json:"packageDetails,omitempty"`
	Errors           []APIError      `json:"errors,omitempty"`
}

// PackageDetail is how one of a customer's packages fared.
type PackageDetail struct {
	Name     string     `json:"name"`
	Status   string     `json:"status,omitempty"`
	Errors   []APIError `json:"errors,omitempty"`
	Warnings []APIError `json:"warnings,omitempty"`
}
