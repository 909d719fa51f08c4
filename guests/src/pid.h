/*
 * A PID controller for load shedding, shared by the C guests that shed loads (load-shed.c and the
 * shed-world's shedder.c). Its input is the import power over the limit (W, positive = too much); its
 * output is how urgently a load should go (W): the proportional term answers the excess now, the
 * integral one an excess that persists, the derivative one a fast rise. The integral is bounded
 * (no credit for time spent under the limit, and no wind-up while the interlocks hold a relay).
 */
#ifndef GRIDLET_PID_H
#define GRIDLET_PID_H

typedef struct {
	double kp, ki, kd;		/* gains: W/W, W/(W·s), W·s/W */
	double integral_min;	/* bounds of the integral, W·s */
	double integral_max;
	double integral;
	double last;			/* previous error, W */
	int primed;				/* `last` holds a value */
} Pid;

static inline double pid_clamp(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* One step of `dt` seconds with error `e`; returns the output. */
static inline double pid_step(Pid *p, double e, double dt)
{
	double d = p->primed ? (e - p->last) / dt : 0;
	p->integral = pid_clamp(p->integral + e * dt, p->integral_min, p->integral_max);
	p->last = e;
	p->primed = 1;
	return p->kp * e + p->ki * p->integral + p->kd * d;
}

/* Forgets the history (after the loop acted, or when its limit changed). */
static inline void pid_reset(Pid *p)
{
	p->integral = 0;
	p->last = 0;
	p->primed = 0;
}

#endif
