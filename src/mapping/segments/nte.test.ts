import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readHl7Message, readMessageHeader } from '../../hl7/message.ts';
import { readMappingConfigFiles } from '../config-files.ts';
import { MappingContext } from '../context.ts';
import type { SegmentRef } from '../groups.ts';
import { readOrderGroups } from '../groups.ts';
import type { ResourcePlan } from '../plan.ts';
import { nteText, ntesToAnnotations, ntesToText } from './nte.ts';

const config = readMappingConfigFiles(join(import.meta.dirname, '..', '..', '..', 'seed'));

function notes(...ntes: string[]): { notes: SegmentRef[]; ctx: MappingContext } {
  const message = readHl7Message(['MSH|^~\\&|LABSYS|ACMELAB|HUB|NS|20261115-0500||ORU^R01|1|P|2.8', 'PID|1||1^^^NSH^MR', 'OBR|1||F1|X', ...ntes].join('\r'));
  return { notes: readOrderGroups(message).patients[0].orders[0].notes, ctx: new MappingContext(readMessageHeader(message), config) };
}

describe('NTE', () => {
  test('NTE-3: escapes decoded, \\.br\\ and repetitions become line breaks, unescaped ^ kept', () => {
    const { notes: n } = notes('NTE|1|L|a \\T\\ b\\.br\\c~second^part  ');
    expect(nteText(n[0])).toBe('a & b\nc\nsecond^part');
  });

  test('one annotation per NTE with text; author (NTE-5) and time (NTE-6)', () => {
    const { notes: n, ctx } = notes('NTE|1|L|First', 'NTE|2|L|', 'NTE|3|L|Third||1629071234^Moreau^Celine^^^^^^NPI|202611161435-0500', 'NTE|4|L|Fourth||^Night^Shift');
    const plans: ResourcePlan[] = [];
    expect(ntesToAnnotations(n, ctx, plans)).toEqual([
      { text: 'First' },
      {
        text: 'Third',
        authorReference: { reference: 'local:Practitioner/http://hl7.org/fhir/sid/us-npi^1629071234', display: 'Celine Moreau' },
        time: '2026-11-16T14:35:00-05:00',
      },
      { text: 'Fourth', authorString: 'Shift Night' },
    ]);
    expect(plans).toHaveLength(1);
  });

  test('as one text: lines kept, blank lines inside kept, leading and trailing blanks dropped', () => {
    expect(ntesToText(notes('NTE|1||', 'NTE|2||Line 1', 'NTE|3||', 'NTE|4||Line 2', 'NTE|5||').notes)).toBe('Line 1\n\nLine 2');
    expect(ntesToText(notes('NTE|1||').notes)).toBeUndefined();
  });
});
