package provisioning

// Wire types of the Webex for Wholesale Customers API, as Cisco's OpenAPI
// description gives them (paths under /v1/wholesale/customers).

// The customer paths, relative to the base URL.
const (
	PathCustomers        = "/wholesale/customers"
	PathCustomerValidate = "/wholesale/customers/validate"
)

// Customer statuses reported by the API.
const (
	CustomerProvisioned           = "provisioned"
	CustomerProvisionedWithErrors = "provisioned_with_errors"
	CustomerProvisioning          = "provisioning"
	CustomerUpdating              = "updating"
	CustomerDeleting              = "deleting"
	CustomerError                 = "error"
	// CustomerPendingRPLReview: the customer waits for a Denied Party List
	// compliance check, which people at Cisco carry out.
	CustomerPendingRPLReview = "pending_rpl_review"
)

// Address is a customer's billing address, or a calling location's.
// Cisco allows 50 characters per address line.
type Address struct {
	AddressLine1    string `json:"addressLine1"`
	AddressLine2    string `json:"addressLine2,omitempty"`
	City            string `json:"city"`
	StateOrProvince string `json:"stateOrProvince,omitempty"`
	ZipOrPostalCode string `json:"zipOrPostalCode,omitempty"`
	Country         string `json:"country"`
}

// CustomerProvisioningParameters is the provisioningParameters object of a
// customer's create, precheck and update.
type CustomerProvisioningParameters struct {
	// Calling is mandatory when a calling package is provisioned.
	Calling  *CallingParameters  `json:"calling,omitempty"`
	Meetings *MeetingsParameters `json:"meetings,omitempty"`
	Packages *PackageLimits      `json:"packages,omitempty"`
}

// CallingParameters hold the customer's main calling location.
type CallingParameters struct {
	Location CallingLocation `json:"location"`
}

// CallingLocation is the office a calling package is provisioned at.
type CallingLocation struct {
	Name                        string  `json:"name"`
	Address                     Address `json:"address"`
	Timezone                    string  `json:"timezone"`
	Language                    string  `json:"language"`
	EmergencyLocationIdentifier string  `json:"emergencyLocationIdentifier,omitempty"`
}

// MeetingsParameters hold the meetings package's settings.
type MeetingsParameters struct {
	Timezone string `json:"timezone,omitempty"`
}

// PackageLimits caps how many of each package the customer may assign.
type PackageLimits struct {
	Limits map[string]int `json:"limits,omitempty"`
}

// CustomerRequest is the body of POST /wholesale/customers and of its
// precheck, POST /wholesale/customers/validate. A create needs
// ProvisioningID, Packages, ExternalID and Address, and CustomerInfo unless
// OrgID names an existing organisation; the precheck needs only Address.
type CustomerRequest struct {
	ProvisioningID         string                          `json:"provisioningId,omitempty"`
	Packages               []string                        `json:"packages,omitempty"`
	OrgID                  string                          `json:"orgId,omitempty"`
	ExternalID             string                          `json:"externalId,omitempty"`
	Address                Address                         `json:"address"`
	CustomerInfo           *CustomerInfo                   `json:"customerInfo,omitempty"`
	ProvisioningParameters *CustomerProvisioningParameters `json:"provisioningParameters,omitempty"`
}

// CustomerUpdateRequest is the body of PUT /wholesale/customers/{id}.
// Packages is the complete list: a package left out is removed.
type CustomerUpdateRequest struct {
	ExternalID             string                          `json:"externalId,omitempty"`
	Packages               []string                        `json:"packages"`
	Address                *Address                        `json:"address,omitempty"`
	ProvisioningParameters *CustomerProvisioningParameters `json:"provisioningParameters,omitempty"`
}

// ResourceURL is the 202 answer of a customer's create and update.
type ResourceURL struct {
	URL string `json:"url"`
}

// Customer is the customer resource.
type Customer struct {
	ID string `json:"id"`
	// OrgID is set once the customer is provisioned.
	OrgID           string           `json:"orgId,omitempty"`
	ExternalID      string           `json:"externalId,omitempty"`
	Address         *Address         `json:"address,omitempty"`
	Status          string           `json:"status"`
	Packages        []string         `json:"packages,omitempty"`
	ResourceDetails *ResourceDetails `json:"resourceDetails,omitempty"`
	// Errors are those of the last asynchronous provisioning or update.
	Errors []ErrorItem `json:"errors,omitempty"`
}

// ResourceDetails says how each of a customer's packages fared.
type ResourceDetails struct {
	Packages []PackageDetail `json:"packages,omitempty"`
}

// PackageDetail is one package of a customer.
type PackageDetail struct {
	Name       string      `json:"name"`
	Status     string      `json:"status,omitempty"`
	Warnings   []ErrorItem `json:"warnings,omitempty"`
	Errors     []ErrorItem `json:"errors,omitempty"`
	LicenseIDs []string    `json:"licenseIds,omitempty"`
}

// CustomerList is the answer of GET /wholesale/customers.
type CustomerList struct {
	Items []Customer `json:"items"`
}
