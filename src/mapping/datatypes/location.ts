import type { Location } from '@medplum/fhirtypes';
import { HUB_SID } from '../../constants.ts';
import type { FieldRep } from '../../hl7/fields.ts';
import type { MappingContext } from '../context.ts';
import { slug } from '../context.ts';

/**
 * PL → Location (IG datatype map, flattened): the most specific part of PL.1 point of care, PL.2
 * room, PL.3 bed, with PL.4 facility and PL.7 building/PL.8 floor, named `unit room-bed`. The
 * location is keyed by its full path within the sender's facility, so the same bed is one
 * Location however often it is sent.
 * @param pl - One repetition of a PL field.
 * @param ctx - The mapping context.
 * @returns The Location (without id), or undefined when empty.
 */
export function plToLocation(pl: FieldRep, ctx: MappingContext): Location | undefined {
  if (pl.isNull) {
    return undefined;
  }
  const facility = pl.sub(4, 1).trim() || ctx.header.sendingFacility;
  const parts = [pl.get(1), pl.get(7), pl.get(8), pl.get(2), pl.get(3)].map((p) => p.trim());
  const [unit, building, floor, room, bed] = parts;
  if (!unit && !room && !bed) {
    return undefined;
  }
  const key = [facility, unit, building, floor, room, bed].join('^');
  const physical = bed ? 'bd' : room ? 'ro' : 'wa';
  return {
    resourceType: 'Location',
    identifier: [{ system: `${HUB_SID}/hl7-location/${slug(facility || 'unknown')}`, value: key }],
    name: [unit, [room, bed].filter(Boolean).join('-')].filter(Boolean).join(' '),
    mode: 'instance',
    status: 'active',
    physicalType: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/location-physical-type', code: physical }],
    },
    ...(pl.get(9).trim() ? { description: pl.get(9).trim() } : {}),
  };
}
