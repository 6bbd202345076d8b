import { EventHeap } from './event-heap';

describe('EventHeap', () => {
  it('pops the earliest event first and ties in the order they were pushed', () => {
    const heap = new EventHeap();
    const pushed: Array<[number, number]> = [
      [30, 1],
      [10, 2],
      [20, 3],
      [10, 4],
      [30, 5],
      [10, 6],
      [0, 7],
    ];
    for (const [at, payload] of pushed) heap.push(at, payload);
    const popped: Array<[number, number]> = [];
    while (heap.size) popped.push([heap.peekTime(), heap.pop()]);
    expect(popped).toEqual([
      [0, 7],
      [10, 2],
      [10, 4],
      [10, 6],
      [20, 3],
      [30, 1],
      [30, 5],
    ]);
    expect(heap.peekTime()).toBe(Infinity);
  });
});
