#!/bin/sh
# Runs at boot: reads /etc/HOSTNAME.
hostname -F /etc/HOSTNAME
