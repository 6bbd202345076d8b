import { TestWorld } from '/work/main/test/support/service';
import { SlotsRepository } from '/work/main/src/slots/slots.repository';
const w = new TestWorld();
process.stdout.write(`${w.id} ${typeof SlotsRepository} ${__dirname}\n`);
void w.dispose();
