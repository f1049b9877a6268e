import { describe, expect, test } from 'vitest';
import { parseField } from '../../hl7/fields.ts';
import { readHl7Message } from '../../hl7/message.ts';
import { noteText, repText } from './note-text.ts';

describe('noteText', () => {
  test('every NTE-3 repetition and segment is a line; escapes decoded; blank and "" skipped', () => {
    const message = readHl7Message(
      ['MSH|^~\\&|A|B|C|D|20240101||SIU^S12|1|P|2.5.1', 'NTE|1||First \\T\\ second~\\.br\\', 'NTE|2||""', 'NTE|3||Third^with caret'].join('\r')
    );
    expect(noteText(message.getAllSegments('NTE'))).toBe('First & second\nThird^with caret');
    expect(noteText([])).toBeUndefined();
  });
});

describe('repText', () => {
  test('joins unescaped components and subcomponents back with the message delimiters', () => {
    const context = readHl7Message('MSH#$*@!#A').context;
    expect(repText(parseField('a$b!c', context)[0], context)).toBe('a$b!c');
    expect(repText(parseField('""', context)[0], context)).toBe('');
  });
});
