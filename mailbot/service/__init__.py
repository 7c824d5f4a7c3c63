"""Running mailbot as a service: systemd notifications (`notify`) and Prometheus metrics (`metrics`)."""
