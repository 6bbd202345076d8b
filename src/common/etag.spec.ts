import express from 'express';
import { weakEtag } from './etag';

describe('weakEtag', () => {
  const expressDefault = express().get('etag fn') as (
    body: string | Buffer,
    enc?: string,
  ) => string;

  it("is Express's default weak ETag, to the character", () => {
    for (const body of ['', '{}', '{"id":"é"}', 'x'.repeat(5_000)]) {
      expect(weakEtag(body, 'utf8')).toBe(expressDefault(body, 'utf8'));
      expect(weakEtag(Buffer.from(body))).toBe(expressDefault(Buffer.from(body)));
    }
  });
});
