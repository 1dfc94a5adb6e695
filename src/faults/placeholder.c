/* temporary: removed when the first real source lands */
int ld_placeholder_faults(void);
int ld_placeholder_faults(void) { return 0; }
