import { parseEventId } from './voice-event-stream.service';

describe('parseEventId', () => {
  it('reads the ids the stream sends', () => {
    expect(parseEventId('1234')).toEqual({ id: '1234', half: true });
    // A re-clone's voice.remote_changed: nothing of that row is owed any more.
    expect(parseEventId('1234_remote')).toEqual({ id: '1234', half: false });
  });

  it('refuses anything else', () => {
    for (const raw of ['', 'abc', '-1', '1.5', '12_other', '99999999999999999999', 'evt_12'])
      expect(parseEventId(raw)).toBeNull();
  });
});
