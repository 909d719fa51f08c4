/*
 * Module "gridlet/xs-heap": what the XS machine running the firmware uses of its heaps and stack, for
 * `status`, the heap budget (docs/firmware.md) and the firmware tests.
 *
 *   stats() → [slotSize, slots, slotsPeak, slotsAllocated, chunks, chunksPeak, chunksAllocated, stackPeakBytes, stackBytes]
 *
 * slots* count slots (slotSize bytes each: 16 on the ESP32, 32 on a 64-bit simulator); chunks* are
 * bytes. *Peak is the most ever in use, garbage included; *Allocated is what the machine holds, which
 * on a growing heap (the simulator) is the least it needed: XS collects before it grows. The stack
 * peak is kept only in instrumented builds (mxInstrument); elsewhere it is -1.
 */

#include "xsAll.h"
#include "xsmc.h"

void xs_gridlet_xs_heap_stats(xsMachine *the)
{
	txInteger values[9];
	int i;

	values[0] = (txInteger)sizeof(txSlot);
	values[1] = (txInteger)the->currentHeapCount;
	values[2] = (txInteger)the->peakHeapCount;
	values[3] = (txInteger)the->maximumHeapCount;
	values[4] = (txInteger)the->currentChunksSize;
	values[5] = (txInteger)the->peakChunksSize;
	values[6] = (txInteger)the->maximumChunksSize;
#ifdef mxInstrument
	values[7] = (txInteger)((the->stackTop - the->stackPeak) * sizeof(txSlot));
#else
	values[7] = -1;
#endif
	values[8] = (txInteger)((the->stackTop - the->stackBottom) * sizeof(txSlot));
	xsmcVars(1);
	xsmcSetNewArray(xsResult, 9);
	for (i = 0; i < 9; i++) {
		xsmcSetInteger(xsVar(0), values[i]);
		xsmcSetIndex(xsResult, i, xsVar(0));
	}
}
