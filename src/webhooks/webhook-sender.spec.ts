import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { WebhookSigner } from './webhook-sender';

describe('WebhookSigner', () => {
  it('signs byte for byte as the standardwebhooks library does', () => {
    const signer = new WebhookSigner();
    const bodies = [
      '',
      '{"type":"voice.ready","data":{"id":"x"}}',
      JSON.stringify({ name: 'Zoë ✓ 声 🎙', s: '\ud800' }),
      'x'.repeat(70_000),
    ];
    for (let i = 0; i < 20; i++) {
      const secret = `whsec_${randomBytes(24).toString('base64')}`;
      const id = `msg_${randomBytes(8).toString('hex')}`;
      const at = new Date(1_765_400_000_000 + i * 12_345);
      for (const body of bodies) {
        // Twice: the second use of a secret takes the key built by the first.
        expect(signer.sign(secret, id, at, body)).toBe(new Webhook(secret).sign(id, at, body));
        expect(signer.sign(secret, id, at, body)).toBe(new Webhook(secret).sign(id, at, body));
      }
    }
  });

  it('answers a signature that the library verifies', () => {
    const secret = `whsec_${randomBytes(24).toString('base64')}`;
    const at = new Date();
    const body = '{"type":"voice.failed"}';
    const headers = {
      'webhook-id': 'msg_1',
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': new WebhookSigner().sign(secret, 'msg_1', at, body),
    };
    expect(() => new Webhook(secret).verify(body, headers)).not.toThrow();
  });

  it('keeps one key per secret', () => {
    const signer = new WebhookSigner();
    const a = `whsec_${randomBytes(24).toString('base64')}`;
    const b = `whsec_${randomBytes(24).toString('base64')}`;
    const at = new Date();
    expect(signer.sign(a, 'm', at, '{}')).toBe(new Webhook(a).sign('m', at, '{}'));
    expect(signer.sign(b, 'm', at, '{}')).toBe(new Webhook(b).sign('m', at, '{}'));
    expect(signer.sign(a, 'm', at, '{}')).not.toBe(signer.sign(b, 'm', at, '{}'));
  });
});
