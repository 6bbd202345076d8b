import { unsupportedNode } from './node-version';

describe('unsupportedNode', () => {
  it('refuses Node 20 and 22 before 22.19 with a line naming both versions', () => {
    expect(unsupportedNode('20.20.2')).toMatch(
      /needs Node\.js 22\.19\.0 or later; this is 20\.20\.2/,
    );
    expect(unsupportedNode('22.18.9')).not.toBeNull();
  });

  it('accepts 22.19 and anything later', () => {
    for (const v of ['22.19.0', '22.20.1', '23.0.0', '24.21.0'])
      expect(unsupportedNode(v)).toBeNull();
  });
});
