import type { Hl7Segment } from '@medplum/core';
import type { Immunization } from '@medplum/fhirtypes';
import { rep } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { cweToCodeableConcept } from '../datatypes/coding.ts';

/**
 * RXR → Immunization.route and .site (IG RXR[Immunization] map): RXR-1 route (HL7 table 0162
 * when the sender names no coding system), RXR-2 administration site (table 0163).
 * @param rxr - The RXR segment of the order group, if any.
 * @param ctx - The mapping context.
 * @returns The route and site elements (either may be absent).
 */
export function mapRouteAndSite(rxr: Hl7Segment | undefined, ctx: MappingContext): Pick<Immunization, 'route' | 'site'> {
  const routeRep = rep(rxr, 1);
  const siteRep = rep(rxr, 2);
  const route = routeRep ? cweToCodeableConcept(routeRep, ctx, 'HL70162') : undefined;
  const site = siteRep ? cweToCodeableConcept(siteRep, ctx, 'HL70163') : undefined;
  return { ...(route ? { route } : {}), ...(site ? { site } : {}) };
}
