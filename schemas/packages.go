package schemas

// The Webex Wholesale packages an order may name, as the subscriber-order
// schema lists them.
const (
	PackageWebexCalling         = "webex_calling"
	PackageWebexMeetings        = "webex_meetings"
	PackageWebexSuite           = "webex_suite"
	PackageWebexVoice           = "webex_voice"
	PackageCXEssentials         = "cx_essentials"
	PackageWebexCallingStandard = "webex_calling_standard"
	PackageAttendantConsole     = "attendant_console"
	PackageCXPremiumAgent       = "cx_premium_agent"
	PackageCXStandardAgent      = "cx_standard_agent"
)

// Package returns the package the order assigns: the first of Packages, since
// the API accepts one package today, or "" when there is none.
func (o Order) Package() string {
	if len(o.Packages) == 0 {
		return ""
	}
	return o.Packages[0]
}

// IsCallingPackage reports whether p includes Webex Calling, in which case
// provisioning needs a primary phone number, an extension or both. It agrees
// with the callingPackage definition of the subscriber-order schema.
func IsCallingPackage(p string) bool {
	switch p {
	case PackageWebexCalling, PackageWebexCallingStandard, PackageWebexSuite, PackageWebexVoice, PackageCXEssentials:
		return true
	}
	return false
}
