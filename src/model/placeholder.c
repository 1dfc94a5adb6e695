/* temporary: removed when the first real source lands */
int ld_placeholder_model(void);
int ld_placeholder_model(void) { return 0; }
