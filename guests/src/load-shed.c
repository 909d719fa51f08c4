/*
 * load-shed (C): holds the import under a limit by shedding up to two loads, relay 1 first, then
 * relay 2. The limit is the grid's import limit (signal 3), else kv slot 0, else 5 kW; one load is
 * taken to be kv slot 1 W (default 1500).
 *   - Shedding: a PID loop on the import over the limit (pid.h) sheds the next load when its output
 *     passes half a load: at once for a large excess or a fast rise, after about a minute for a
 *     small one that persists. The loop starts afresh after each step.
 *   - Restoring: the last load shed comes back when the import plus that load has stayed under 90 %
 *     of the limit for a minute.
 * An interlock's refusal leaves the level where it is. Each change is logged and emitted as kind 1
 * (the number of loads shed).
 */
#include "gridlet.h"
#include "pid.h"

#define PERIOD_S 5.0
#define LOADS 2
#define DEFAULT_LIMIT_W 5000.0
#define DEFAULT_LOAD_W 1500.0
#define CALM_TICKS 12

static Pid pid = { 0.5, 0.05, 0.5, 0.0, 20000.0, 0, 0, 0 };
static int level;			/* loads shed: relays 1..level are off */
static int calm;			/* ticks the import has left room for the last load */

static double limit_w(void)
{
	double limit = gl_signal(GL_SIGNAL_IMPORT_LIMIT);
	if (gl_isnan(limit) || limit <= 0)
		limit = gl_kv_get(0);
	if (gl_isnan(limit) || limit <= 0)
		limit = DEFAULT_LIMIT_W;
	return limit;
}

GRIDLET_EXPORT(init) int init(void)
{
	int id;
	pid_reset(&pid);
	calm = 0;
	/* Whatever is off already (after a restart) counts as shed. */
	level = 0;
	for (id = 1; id <= LOADS && gl_relay_state(id) == 0; id++)
		level = id;
	return 0;
}

static void step(int next, double why)
{
	int shedding = next > level;
	/* Shedding switches the next load off; restoring switches the last one back on. */
	if (gl_relay(shedding ? next : level, !shedding) != GL_RELAY_DONE)
		return;
	level = next;
	calm = 0;
	pid_reset(&pid);
	gl_log_value("shed level", level, 0);
	gl_log_value(shedding ? "pid output W" : "import W", why, 0);
	gl_emit(1, level);
}

GRIDLET_EXPORT(tick) int tick(void)
{
	double power = gl_channel(GL_CH_POWER_IMPORTED);
	double load = gl_kv_get(1);
	double limit = limit_w();
	double urgency;

	if (gl_isnan(power))
		return 0;
	if (gl_isnan(load) || load < 100)
		load = DEFAULT_LOAD_W;
	urgency = pid_step(&pid, power - limit, PERIOD_S);
	if (urgency > load / 2 && level < LOADS) {
		step(level + 1, urgency);
		return 0;
	}
	if (level > 0 && power + load < 0.9 * limit) {
		if (++calm >= CALM_TICKS)
			step(level - 1, power);
	}
	else
		calm = 0;
	return 0;
}

GRIDLET_EXPORT(on_signal) void on_signal(int id, double value)
{
	(void)value;
	/* A new import limit: the loop starts afresh. */
	if (id == GL_SIGNAL_IMPORT_LIMIT)
		pid_reset(&pid);
}
