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
