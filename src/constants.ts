/**
 * Canonical URIs the hub defines. Identifier systems use the `sid` path convention of
 * hl7.org/fhir/sid; extensions live under StructureDefinition; code systems under CodeSystem.
 */
export const HUB_URI = 'https://fhir.integration-hub.dev';

/** Tag on every resource the hub manages as code; the code is the resource's managed name. */
export const MANAGED_TAG_SYSTEM = `${HUB_URI}/CodeSystem/managed-resource`;

/** Identifier system of Bot names (`Bot/$execute?identifier=<system>|<name>` works on any target). */
export const BOT_NAME_SYSTEM = `${HUB_URI}/sid/bot-name`;

/** Extension on a Bot recording the bundle version it runs: `<package>+<git rev>.<content hash>`. */
export const BOT_VERSION_EXTENSION = `${HUB_URI}/StructureDefinition/bot-version`;

/** Extension on a Bot recording the SHA-256 of its bundle (the deploy skip key). */
export const BOT_HASH_EXTENSION = `${HUB_URI}/StructureDefinition/bot-bundle-hash`;

/**
 * Extension (valueReference) on a ClientApplication or Bot naming the AccessPolicy of its
 * ProjectMembership. Deploy applies it to the membership; the extension documents it on the resource.
 */
export const MEMBERSHIP_POLICY_EXTENSION = `${HUB_URI}/StructureDefinition/membership-access-policy`;

/**
 * Extension (valueReference) on an Agent naming the ClientApplication the on-prem agent logs in
 * with. Inbound bots run as that client on the stock server; the local runtime's MLLP bridge
 * needs the same information to run them with the same identity.
 */
export const AGENT_CLIENT_EXTENSION = `${HUB_URI}/StructureDefinition/agent-client`;

/** Organization identifier system for HL7 senders' configuration (value: MSH-4.1, or `*` for the default). */
export const HL7_SENDER_SYSTEM = `${HUB_URI}/sid/hl7-sending-facility`;

/** Extension (valueString, an IANA zone) on a sender Organization: zone of times sent without an offset. */
export const SENDER_TIMEZONE_EXTENSION = `${HUB_URI}/StructureDefinition/hl7-sender-timezone`;

/**
 * Extension (valueInstant) on every resource written from a message: the time of the event that
 * wrote it (EVN-2, else MSH-7). An older message never overwrites what a newer one wrote, so
 * feeds that arrive out of order converge.
 */
export const SOURCE_TIME_EXTENSION = `${HUB_URI}/StructureDefinition/source-event-time`;

/** Base of hub-scoped identifier systems (synthetic keys, unmapped assigning authorities, sender-local ids). */
export const HUB_SID = `${HUB_URI}/sid`;

/**
 * Extension (valueString, comma-separated element names) on resources written from messages:
 * elements set by a message that was not authoritative for them (defaults, `fill` plans), which
 * the first authoritative message replaces whatever its event time.
 */
export const PROVISIONAL_EXTENSION = `${HUB_URI}/StructureDefinition/provisional-elements`;
