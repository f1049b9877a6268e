import type { Identifier, Location, Organization, Practitioner, Reference } from '@medplum/fhirtypes';
import type { ErrorLocation } from '../../hl7/ack.ts';
import type { FieldRep } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { identifierType } from '../datatypes/identifier.ts';
import { plToLocation } from '../datatypes/location.ts';
import { xcnDisplay, xcnToPractitioner } from '../datatypes/practitioner.ts';
import { identifierToken } from '../keys.ts';
import type { MergeStrategy, ResourcePlan } from '../plan.ts';
import { localRef } from '../plan.ts';

/**
 * Plans a Practitioner for an XCN and returns a reference to it. A provider with an id becomes a
 * Practitioner keyed by that id (merge `fill`: a provider directory may know more than an HL7
 * feed); one without an id is only a display name on the reference.
 * @param xcn - One repetition of an XCN field.
 * @param ctx - The mapping context.
 * @param location - Where it was read.
 * @param plans - Plans collected so far; the Practitioner is added once per identifier.
 * @returns The reference, or undefined when the XCN is empty.
 */
export function practitionerRef(
  xcn: FieldRep | undefined,
  ctx: MappingContext,
  location: ErrorLocation,
  plans: ResourcePlan[]
): Reference<Practitioner> | undefined {
  if (!xcn || xcn.isEmpty() || xcn.isNull) {
    return undefined;
  }
  const display = xcnDisplay(xcn);
  const practitioner = xcnToPractitioner(xcn, ctx, location);
  if (!practitioner) {
    return display ? { display } : undefined;
  }
  const key = 'Practitioner/' + identifierToken(practitioner.identifier?.[0]);
  if (!plans.some((p) => p.key === key)) {
    plans.push({ key, resource: practitioner, identifiers: practitioner.identifier ?? [], merge: 'fill' });
  }
  return localRef<Practitioner>(key, display);
}

/**
 * Plans a Location for a PL and returns a reference to it (merge `fill`).
 * @param pl - One repetition of a PL field.
 * @param ctx - The mapping context.
 * @param plans - Plans collected so far; the Location is added once.
 * @returns The reference, or undefined when the PL is empty.
 */
export function locationRef(pl: FieldRep | undefined, ctx: MappingContext, plans: ResourcePlan[]): Reference<Location> | undefined {
  if (!pl) {
    return undefined;
  }
  const location = plToLocation(pl, ctx);
  if (!location) {
    return undefined;
  }
  const key = 'Location/' + identifierToken(location.identifier?.[0]);
  if (!plans.some((p) => p.key === key)) {
    plans.push({ key, resource: location, identifiers: location.identifier ?? [], merge: 'fill' });
  }
  return localRef<Location>(key, location.name);
}

/**
 * Plans an Organization known by an identifier and returns a reference to it (merge `fill` by
 * default: the payer or practice directory knows more than an HL7 feed). Without an identifier the
 * organization cannot be found again, so only its name is kept, as the reference's display.
 * @param identifier - The organization's identifier (with a system), if the message has one.
 * @param details - Name, address, telecom the message gives.
 * @param plans - Plans collected so far; the Organization is added once per identifier.
 * @param merge - How the Organization is merged: `keep` for reference data (MVX manufacturers).
 * @returns The reference, or undefined when there is neither an identifier nor a name.
 */
export function organizationRef(
  identifier: Identifier | undefined,
  details: Pick<Organization, 'name' | 'address' | 'telecom'>,
  plans: ResourcePlan[],
  merge: MergeStrategy = 'fill'
): Reference<Organization> | undefined {
  const name = details.name?.trim() || undefined;
  if (!identifier) {
    return name ? { display: name } : undefined;
  }
  const key = 'Organization/' + identifierToken(identifier);
  if (!plans.some((p) => p.key === key)) {
    const organization: Organization = { resourceType: 'Organization', identifier: [identifier] };
    if (name) {
      organization.name = name;
    }
    if (details.address?.length) {
      organization.address = details.address;
    }
    if (details.telecom?.length) {
      organization.telecom = details.telecom;
    }
    plans.push({ key, resource: organization, identifiers: [identifier], merge });
  }
  return localRef<Organization>(key, name);
}

/**
 * XON → Organization reference (IG datatype map): XON.10 organization identifier (XON.3 before
 * v2.5) with XON.6 assigning authority and XON.7 type → identifier, XON.1 → name.
 * @param xon - One repetition of an XON field.
 * @param ctx - The mapping context.
 * @param location - Where it was read.
 * @param plans - Plans collected so far.
 * @returns The reference, or undefined when the XON is empty.
 */
export function xonOrganizationRef(
  xon: FieldRep | undefined,
  ctx: MappingContext,
  location: ErrorLocation,
  plans: ResourcePlan[]
): Reference<Organization> | undefined {
  if (!xon || xon.isNull || xon.isEmpty()) {
    return undefined;
  }
  const value = (xon.get(10) || xon.get(3)).trim();
  const typeCode = xon.get(7).trim();
  let identifier: Identifier | undefined;
  if (value) {
    const system = ctx.identifierSystem(
      { namespace: xon.sub(6, 1), universalId: xon.sub(6, 2), universalIdType: xon.sub(6, 3) },
      typeCode || 'XX',
      location
    );
    identifier = { system, value, ...(typeCode ? { type: identifierType(typeCode) } : {}) };
  }
  return organizationRef(identifier, { name: xon.get(1).trim() || undefined }, plans);
}
