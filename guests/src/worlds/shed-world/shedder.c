/*
 * shed-world / shedder (C): sheds relay 1 to hold the import under the limit the setpoint member
 * computes (setpoint.limit(), called through the agent, its fuel charged here), with the PID loop of
 * load-shed (pid.h): the load goes when the loop's output passes half a load (kv slot 0 W, default
 * 1500), and comes back when the import plus the load has stayed under 90 % of the limit for a
 * minute. Each change is logged and emitted as kind 1 (1 shed, 0 restored).
 */
#include "gridlet.h"
#include "pid.h"

#define PERIOD_S 5.0
#define DEFAULT_LOAD_W 1500.0
#define CALM_TICKS 12

GRIDLET_PEER(setpoint, limit) double setpoint_limit(void);

static Pid pid = { 0.5, 0.05, 0.5, 0.0, 20000.0, 0, 0, 0 };
static int shed;
static int calm;

GRIDLET_EXPORT(init) int init(void)
{
	pid_reset(&pid);
	calm = 0;
	shed = gl_relay_state(1) == 0;
	return 0;
}

GRIDLET_EXPORT(tick) int tick(void)
{
	double power = gl_channel(GL_CH_POWER_IMPORTED);
	double load = gl_kv_get(0);
	double limit = setpoint_limit();
	double urgency;
	int want = shed;

	if (gl_isnan(power) || gl_isnan(limit))
		return 0;
	if (gl_isnan(load) || load < 100)
		load = DEFAULT_LOAD_W;
	urgency = pid_step(&pid, power - limit, PERIOD_S);
	if (!shed && urgency > load / 2)
		want = 1;
	else if (shed && power + load < 0.9 * limit)
		want = ++calm < CALM_TICKS;
	else
		calm = 0;
	if (want == shed || gl_relay(1, !want) != GL_RELAY_DONE)
		return 0;
	shed = want;
	calm = 0;
	pid_reset(&pid);
	gl_log_value(shed ? "shed at limit W" : "restored at limit W", limit, 0);
	gl_emit(1, shed);
	return 0;
}
