"""Plotting and widget callbacks for the chapters; one module per topic."""
