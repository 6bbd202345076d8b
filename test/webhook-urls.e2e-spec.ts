import { checkWebhookUrl } from '../src/webhooks/webhook-url';

describe('webhook URLs in production', () => {
  it('refuses private, loopback and metadata addresses and plain http', async () => {
    const rules = { production: true, allowPrivate: false };
    for (const url of [
      'https://127.0.0.1/hook',
      'https://10.1.2.3/hook',
      'https://169.254.169.254/latest/meta-data',
      'https://[::1]/hook',
      'https://[::ffff:192.168.0.1]/hook',
      'https://localhost/hook',
      'http://93.184.215.14/hook',
      'https://user:pw@93.184.215.14/hook',
    ])
      await expect(checkWebhookUrl(url, rules)).rejects.toMatchObject({
        code: 'webhook_url_refused',
      });
    await expect(checkWebhookUrl('https://93.184.215.14/hook', rules)).resolves.toBeInstanceOf(URL);
  });
});
