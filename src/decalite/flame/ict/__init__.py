"""ICT Face Model Light: conversion to FLAME's file format."""
